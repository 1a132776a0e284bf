/**
 * Hop-by-hop header fields (RFC 9110 §7.6.1): meaningful for one connection only, so a proxy never
 * forwards them. Header names listed in a `Connection` field are hop-by-hop as well.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/** Headers never copied into a capture, whatever the allow-list says. */
export const NEVER_CAPTURED: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
]);

/** The usual `Connection` values, which declare nothing beyond themselves (checked without allocating). */
const PLAIN_CONNECTION = /^\s*(?:keep-alive|close)\s*$/i;

/**
 * The extra names a `Connection` header value declares hop-by-hop (other than `close`/`keep-alive`),
 * lower-cased; `undefined` when there are none (the common case, no allocation).
 */
export function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (value === undefined || PLAIN_CONNECTION.test(value)) return undefined;
  let out: Set<string> | undefined;
  for (const raw of value.split(',')) {
    const t = raw.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive') continue;
    (out ??= new Set()).add(t);
  }
  return out;
}

/** Removes the pairs whose (lower-cased) name is in `names` from a flat `[name, value, ...]` list. */
export function dropPairs(pairs: string[], names: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < pairs.length; i += 2) {
    const k = pairs[i] as string;
    if (!names.has(k.toLowerCase())) out.push(k, pairs[i + 1] as string);
  }
  return out;
}
