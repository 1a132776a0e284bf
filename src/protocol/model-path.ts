/** Model name and version named by a V2 request path. */
export interface PathModel {
  model: string;
  /** `''` when the path names no version. */
  version: string;
}

const PREFIX = '/v2/models/';

function decodeSegment(s: string): string | undefined {
  if (s === '') return undefined;
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * Reads the model (and version) from `/v2/models/{m}[/versions/{v}]/infer` (a query string is
 * ignored) without touching the body; `undefined` for any other path. Cheap enough for the
 * sidecar's hot path: string scans only, no regular expression.
 */
export function peekModelFromPath(path: string): PathModel | undefined {
  if (!path.startsWith(PREFIX)) return undefined;
  const q = path.indexOf('?');
  const p = q === -1 ? path : path.slice(0, q);
  if (!p.endsWith('/infer')) return undefined;
  const rest = p.slice(PREFIX.length, p.length - '/infer'.length);
  const slash = rest.indexOf('/');
  if (slash === -1) {
    const model = decodeSegment(rest);
    return model === undefined ? undefined : { model, version: '' };
  }
  const tail = rest.slice(slash + 1);
  if (!tail.startsWith('versions/')) return undefined;
  const v = tail.slice('versions/'.length);
  if (v.includes('/')) return undefined;
  const model = decodeSegment(rest.slice(0, slash));
  const version = decodeSegment(v);
  return model === undefined || version === undefined ? undefined : { model, version };
}
