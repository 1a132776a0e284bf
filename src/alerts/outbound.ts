import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';

// Ranges an outbound notification may not reach unless allow-listed: the SSRF classes Mimir's
// receivers firewall blocks plus the bypasses seen in the wild (CGNAT, 0/8, benchmark, IPv4-mapped
// and NAT64 IPv6, 6to4). IPv4-mapped IPv6 (::ffff:a.b.c.d) needs no rule of its own: Node's
// BlockList checks it against the IPv4 rules.
const BLOCKED_V4: readonly [string, number][] = [
  ['0.0.0.0', 8], // "this" network, incl. 0.0.0.0
  ['10.0.0.0', 8], // private (RFC 1918)
  ['100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const BLOCKED_V6: readonly [string, number][] = [
  ['fc00::', 7], // unique-local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
  ['100::', 64], // discard-only
  ['2001:db8::', 32], // documentation
];

/** Options of {@link OutboundPolicy}. */
export interface OutboundPolicyOptions {
  /**
   * Hosts and networks that may be reached although they are loopback/private: host names (matched
   * case-insensitively against the URL's host), IP addresses and CIDRs (`10.0.0.0/8`, `::1/128`),
   * matched against the resolved address. `MODELWATCH_OUTBOUND_ALLOW` / `alerts.outboundAllow`.
   * @default []
   */
  allow?: readonly string[];
  /** DNS resolution; replaceable for tests of name-based bypasses. @default node:dns lookup (all addresses) */
  resolve?: (hostname: string) => Promise<{ address: string; family: number }[]>;
}

const defaultResolve = (hostname: string): Promise<{ address: string; family: number }[]> =>
  lookup(hostname, { all: true, verbatim: true });

/** Splits `MODELWATCH_OUTBOUND_ALLOW` (comma or whitespace separated). */
export function parseOutboundAllow(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** The 8 hextets of an IPv6 address (with an embedded dotted IPv4 tail), or undefined. */
function ipv6Hextets(address: string): number[] | undefined {
  let addr = address.toLowerCase();
  const pct = addr.indexOf('%');
  if (pct >= 0) addr = addr.slice(0, pct);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(addr);
  if (v4?.[1] !== undefined) {
    const o = v4[1].split('.').map(Number);
    addr =
      addr.slice(0, -v4[1].length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const all = [...h, ...Array<string>(Math.max(fill, 0)).fill('0'), ...t];
  if (all.length !== 8) return undefined;
  return all.map((x) => parseInt(x, 16));
}

function v4FromHextets(a: number, b: number): string {
  return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
}

/**
 * Decides whether an outbound notification may reach a host. Checks run on the resolved address at
 * connect time, so a DNS name pointing at 127.0.0.1 or 169.254.169.254 is refused like the literal.
 */
export class OutboundPolicy {
  private readonly allowHosts = new Set<string>();
  private readonly allowV4 = new BlockList();
  private readonly allowV6 = new BlockList();
  private readonly blockV4 = new BlockList();
  private readonly blockV6 = new BlockList();
  private readonly resolveFn: (hostname: string) => Promise<{ address: string; family: number }[]>;

  constructor(options: OutboundPolicyOptions = {}) {
    this.resolveFn = options.resolve ?? defaultResolve;
    for (const [net, prefix] of BLOCKED_V4) this.blockV4.addSubnet(net, prefix, 'ipv4');
    for (const [net, prefix] of BLOCKED_V6) this.blockV6.addSubnet(net, prefix, 'ipv6');
    for (const raw of options.allow ?? []) {
      const entry = stripBrackets(raw.trim().toLowerCase());
      if (entry === '') continue;
      const slash = entry.indexOf('/');
      const ip = slash >= 0 ? entry.slice(0, slash) : entry;
      const family = isIP(stripBrackets(ip));
      if (family === 0) {
        if (slash >= 0 || !/^[a-z0-9.-]+$/.test(entry)) {
          throw new ModelwatchError(ErrorCodes.configInvalid, `alerts.outboundAllow: not a host, IP or CIDR: ${raw}`, {
            field: 'alerts.outboundAllow',
          });
        }
        this.allowHosts.add(entry);
        continue;
      }
      const max = family === 4 ? 32 : 128;
      const prefix = slash >= 0 ? Number(entry.slice(slash + 1)) : max;
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) {
        throw new ModelwatchError(ErrorCodes.configInvalid, `alerts.outboundAllow: bad prefix length: ${raw}`, {
          field: 'alerts.outboundAllow',
        });
      }
      (family === 4 ? this.allowV4 : this.allowV6).addSubnet(stripBrackets(ip), prefix, family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  /** True when `address` (an IP literal) lies in a loopback, private, link-local or reserved range. */
  isBlockedAddress(address: string): boolean {
    const ip = stripBrackets(address);
    const family = isIP(ip);
    if (family === 4) return this.blockV4.check(ip, 'ipv4');
    if (family !== 6) return true;
    if (this.blockV6.check(ip, 'ipv6') || this.blockV4.check(ip, 'ipv6')) return true;
    const h = ipv6Hextets(ip);
    if (h === undefined) return true;
    const [a, b, c, d, e, f, g, k] = h as [number, number, number, number, number, number, number, number];
    // ::/96: unspecified (::), loopback (::1) and deprecated IPv4-compatible addresses.
    if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0) return true;
    // ::ffff:0:0/96 mapped (in case the BlockList did not map it) and 64:ff9b::/96 NAT64: check the IPv4 inside.
    if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff)
      return this.blockV4.check(v4FromHextets(g, k), 'ipv4');
    if (a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0)
      return this.blockV4.check(v4FromHextets(g, k), 'ipv4');
    // 2002::/16 6to4 embeds an IPv4 address in bits 16..47.
    if (a === 0x2002) return this.blockV4.check(v4FromHextets(b, c), 'ipv4');
    return false;
  }

  /** True when `hostname` (as written in the URL) or `address` (resolved) is allow-listed. */
  isAllowed(hostname: string, address: string): boolean {
    if (this.allowHosts.has(stripBrackets(hostname).toLowerCase())) return true;
    const ip = stripBrackets(address);
    const family = isIP(ip);
    if (family === 4) return this.allowV4.check(ip, 'ipv4');
    if (family === 6) return this.allowV6.check(ip, 'ipv6') || this.allowV4.check(ip, 'ipv6');
    return false;
  }

  /** Throws `outbound_refused` unless `address` may be reached for `hostname`. */
  check(hostname: string, address: string): void {
    if (this.isAllowed(hostname, address) || !this.isBlockedAddress(address)) return;
    const shown =
      stripBrackets(hostname) === stripBrackets(address) ? address : `${stripBrackets(hostname)} (${address})`;
    throw new ModelwatchError(
      ErrorCodes.outboundRefused,
      `outbound connection to ${shown} refused: loopback, private, link-local or reserved address (allow it with alerts.outboundAllow)`,
    );
  }

  /**
   * Resolves `hostname` and returns the address to connect to, after checking every address it
   * resolves to (a name with one private record among public ones is refused: the resolver may hand
   * out either).
   */
  async resolve(hostname: string): Promise<{ address: string; family: 4 | 6 }> {
    const host = stripBrackets(hostname);
    const literal = isIP(host);
    if (literal !== 0) {
      this.check(host, host);
      return { address: host, family: literal as 4 | 6 };
    }
    let addrs: { address: string; family: number }[];
    try {
      addrs = await this.resolveFn(host);
    } catch (err) {
      throw new ModelwatchError(ErrorCodes.notifyFailed, `DNS lookup of ${host} failed`, {
        retryable: true,
        cause: err,
      });
    }
    const first = addrs[0];
    if (first === undefined) {
      throw new ModelwatchError(ErrorCodes.notifyFailed, `DNS lookup of ${host} returned no address`, {
        retryable: true,
      });
    }
    for (const a of addrs) this.check(host, a.address);
    return { address: first.address, family: first.family === 6 ? 6 : 4 };
  }
}

/** Options of {@link createOutboundAgent}. */
export interface OutboundAgentOptions {
  /** TCP/TLS connect timeout. @default 5000 */
  connectTimeoutMs?: number;
  /** Time to wait for response headers. @default 10000 */
  headersTimeoutMs?: number;
  /** Time between body chunks. @default 10000 */
  bodyTimeoutMs?: number;
}

const agentDefaults = {
  connectTimeoutMs: 5000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 10_000,
} satisfies Required<OutboundAgentOptions>;

/**
 * An undici Agent whose connector resolves the host itself, checks the address with `policy`,
 * connects to that very address (no second lookup a rebinding DNS server could answer differently)
 * and checks the socket's remote address once connected. TLS keeps the host name for SNI and
 * certificate checks. Undici's `request` and `fetch(redirect: 'error' | 'manual')` never follow
 * redirects through it; callers treat a 3xx as a failure.
 */
export function createOutboundAgent(policy: OutboundPolicy, options: OutboundAgentOptions = {}): Agent {
  const o = { ...agentDefaults, ...options };
  const base = buildConnector({ timeout: o.connectTimeoutMs });
  const connect: buildConnector.connector = (opts, callback) => {
    const hostname = stripBrackets(opts.hostname);
    policy.resolve(hostname).then(
      ({ address }) => {
        const servername = opts.servername ?? (isIP(hostname) === 0 ? hostname : undefined);
        base({ ...opts, hostname: address, ...(servername !== undefined ? { servername } : {}) }, (err, socket) => {
          if (err !== null) return callback(err, null);
          const remote = socket.remoteAddress;
          try {
            if (remote !== undefined) policy.check(hostname, remote);
          } catch (refused) {
            socket.destroy();
            return callback(refused as Error, null);
          }
          callback(null, socket);
        });
      },
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err)), null),
    );
  };
  return new Agent({
    connect,
    headersTimeout: o.headersTimeoutMs,
    bodyTimeout: o.bodyTimeoutMs,
    // One notification at a time per origin is plenty; keep few idle sockets.
    connections: 4,
    keepAliveTimeout: 4000,
  });
}

/** Checks at configuration time that `url` is an absolute http(s) URL; `field` names the setting. */
export function parseHttpUrl(url: string, field: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Never echo the value: it may be a credential (a Slack webhook URL is one).
    throw new ModelwatchError(ErrorCodes.configInvalid, `${field}: not a valid URL`, { field });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ModelwatchError(ErrorCodes.configInvalid, `${field}: scheme must be http or https`, { field });
  }
  return u;
}
