import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import { isModelwatchError } from '../common/errors.js';
import { invalid } from './tensor.js';

/** Content codings {@link decompressBody} understands (`x-gzip` is an alias of `gzip`). */
export const SupportedContentEncodings = ['identity', 'gzip', 'x-gzip', 'deflate', 'br'] as const;

/**
 * Undoes a `Content-Encoding` (a comma list is undone last-applied first). The output is capped at
 * `maxBytes`: zlib stops inflating at the cap, so a zip bomb costs at most `maxBytes` of memory and
 * is reported as `decode_invalid` on `field`.
 */
export function decompressBody(body: Buffer, encoding: string, maxBytes: number, field: string): Buffer {
  if (encoding === '' || encoding === 'identity') return body;
  const codings = encoding
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  let out = body;
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i] ?? '';
    const opts = { maxOutputLength: maxBytes };
    try {
      switch (coding) {
        case 'gzip':
        case 'x-gzip':
          out = gunzipSync(out, opts);
          break;
        case 'deflate':
          // RFC 9110 §8.4.1.2: "deflate" is the zlib format, but some senders use raw deflate.
          out = isZlibHeader(out) ? inflateSync(out, opts) : inflateRawSync(out, opts);
          break;
        case 'br':
          out = brotliDecompressSync(out, opts);
          break;
        default:
          throw invalid(field, `unsupported content-encoding ${JSON.stringify(coding)}`);
      }
    } catch (err: unknown) {
      if (isModelwatchError(err)) throw err;
      const code = (err as { code?: unknown } | null)?.code;
      if (code === 'ERR_BUFFER_TOO_LARGE') {
        throw invalid(field, `${coding} body inflates beyond the ${maxBytes}-byte cap`, err);
      }
      throw invalid(
        field,
        `${coding} body does not decompress: ${err instanceof Error ? err.message : String(err)}`,
        err,
      );
    }
  }
  return out;
}

function isZlibHeader(b: Buffer): boolean {
  // RFC 1950: CM = 8 (deflate) and the 16-bit header is a multiple of 31.
  const cmf = b[0];
  const flg = b[1];
  return cmf !== undefined && flg !== undefined && (cmf & 0x0f) === 8 && ((cmf << 8) | flg) % 31 === 0;
}
