/**
 * The client address behind reverse proxies, derived the same way for HTTP requests and
 * WebSocket upgrades (rate limits, per-address connection limits, loopback checks).
 *
 * X-Forwarded-For is read from the right: each proxy appends the address it saw, so the
 * right end is written by the nearest proxy and everything further left may be forged by
 * the client. TRUST_PROXY says how far left to believe it:
 * - off: the TCP peer, X-Forwarded-For ignored;
 * - N hops: the peer and the N-1 proxies before it are trusted; the client is the Nth
 *   entry from the right (N=1: the right-most entry, written by the one proxy in front);
 * - a list of proxy addresses/CIDRs: walk left from the peer while the address is a
 *   listed proxy; the first address that is not is the client (express's proxy-addr rule).
 *   A peer that is not listed is the client, whatever it sends.
 * A chain shorter than the configured trust yields its left-most entry.
 */
import { BlockList, isIP } from 'node:net';

/** Parsed TRUST_PROXY. */
export type TrustProxy =
  | { readonly kind: 'off' }
  | { readonly kind: 'hops'; readonly hops: number }
  | { readonly kind: 'proxies'; readonly proxies: BlockList; readonly list: readonly string[] };

/** Largest hop count accepted: more proxies in a row than this is a misconfiguration. */
export const MAX_TRUSTED_HOPS = 16;

/**
 * Parse a TRUST_PROXY value: `false`/`0` (off), `true` (= 1 hop), a hop count, or a
 * comma-separated list of proxy addresses and CIDRs (`127.0.0.1,10.0.0.0/8,::1`).
 * @returns the setting, or a message saying what is wrong.
 */
export function parseTrustProxy(raw: string): TrustProxy | string {
  const v = raw.trim().toLowerCase();
  if (v === '' || v === 'false' || v === '0') return { kind: 'off' };
  if (v === 'true') return { kind: 'hops', hops: 1 };
  if (/^\d+$/.test(v)) {
    const hops = Number(v);
    if (hops > MAX_TRUSTED_HOPS) return `a hop count must be between 0 and ${MAX_TRUSTED_HOPS}`;
    return { kind: 'hops', hops };
  }
  const proxies = new BlockList();
  const list: string[] = [];
  for (const part of v.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [addr = '', prefix, extra] = part.split('/');
    const family = isIP(addr);
    const bits = family === 4 ? 32 : 128;
    if (family === 0 || extra !== undefined || (prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) <= bits))) {
      return `"${part}" is not an IP address or CIDR; use false, true, a hop count, or a list like 127.0.0.1,10.0.0.0/8`;
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) proxies.addAddress(addr, type);
    else proxies.addSubnet(addr, Number(prefix), type);
    list.push(part);
  }
  if (list.length === 0) return 'empty list';
  return { kind: 'proxies', proxies, list: Object.freeze(list) };
}

/** `::ffff:192.0.2.1` -> `192.0.2.1`, so one client has one key whichever socket family it used. */
function unmap(ip: string): string {
  return ip.length > 7 && ip.slice(0, 7).toLowerCase() === '::ffff:' && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

function trusted(proxies: BlockList, ip: string): boolean {
  const family = isIP(ip);
  return family !== 0 && proxies.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client address of a request.
 * @param peer the TCP peer address.
 * @param forwarded the X-Forwarded-For header (several headers joined with commas).
 */
export function clientAddress(trust: TrustProxy, peer: string, forwarded: string | readonly string[] | null | undefined): string {
  if (trust.kind === 'off' || !forwarded || (trust.kind === 'hops' && trust.hops === 0)) return unmap(peer);
  if (trust.kind === 'proxies' && !trusted(trust.proxies, unmap(peer))) return unmap(peer);
  const text = typeof forwarded === 'string' ? forwarded : forwarded.join(',');
  const chain = text.split(',').map((h) => h.trim()).filter(Boolean);
  if (chain.length === 0) return unmap(peer);
  if (trust.kind === 'hops') return unmap(chain[Math.max(0, chain.length - trust.hops)]!);
  let i = chain.length - 1;
  while (i > 0 && trusted(trust.proxies, unmap(chain[i]!))) i--;
  return unmap(chain[i]!);
}

/**
 * The key a per-address limit counts a client under: the address itself for IPv4, its /64
 * for IPv6 — one subscriber commonly holds a whole /64, so counting each /128 apart would
 * give one client 2^64 allowances.
 */
export function limitKey(ip: string): string {
  if (!ip.includes(':') || /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(ip)) return ip;
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
