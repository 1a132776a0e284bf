/** Replacement text for a secret. */
export const REDACTED = '[redacted]';

/**
 * Removes known secrets from text before it reaches a log line, an error, a metric or a stored row.
 * Built per channel from its credentials: a webhook URL (whole, path, query and each long path
 * segment, since the URL *is* the credential), a password, a token.
 */
export class Redactor {
  private readonly secrets: string[];

  constructor(secrets: Iterable<string | undefined>) {
    const set = new Set<string>();
    for (const s of secrets) {
      if (s === undefined || s.length < 4) continue;
      set.add(s);
      const enc = encodeURIComponent(s);
      if (enc !== s) set.add(enc);
    }
    // Longest first, so a URL is replaced whole before its path is.
    this.secrets = [...set].sort((a, b) => b.length - a.length);
  }

  /** The secrets worth hiding in `url`: the URL, its path and query, long path segments, query values, userinfo. */
  static urlSecrets(url: string): string[] {
    const out = [url];
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return out;
    }
    out.push(u.href);
    if (u.pathname.length > 1) out.push(u.pathname + u.search, u.pathname);
    if (u.search.length > 1) out.push(u.search);
    for (const seg of u.pathname.split('/')) if (seg.length >= 8) out.push(seg, decodeURIComponent(seg));
    for (const v of u.searchParams.values()) if (v.length >= 4) out.push(v);
    if (u.password) out.push(u.password, decodeURIComponent(u.password));
    return out;
  }

  /** `text` with every secret replaced by {@link REDACTED}. */
  redact(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    return out;
  }
}

/** A one-line description of any thrown value, following `cause` chains, redacted and capped. */
export function describeError(err: unknown, redactor: Redactor, maxChars = 500): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 4; depth++) {
    if (cur instanceof Error) {
      const code = (cur as { code?: unknown }).code;
      parts.push(typeof code === 'string' && !cur.message.includes(code) ? `${cur.message} (${code})` : cur.message);
      cur = cur.cause;
    } else {
      parts.push(typeof cur === 'string' ? cur : typeof cur);
      cur = undefined;
    }
  }
  const text = redactor.redact([...new Set(parts)].join(': '));
  return text.length > maxChars ? text.slice(0, maxChars - 1) + '…' : text;
}
