/**
 * Which addresses a user-supplied push endpoint (a Web Push subscription URL) may reach.
 * Anything that is not plain public unicast is refused: private (RFC 1918, fc00::/7),
 * loopback, link-local (169.254/16, where cloud metadata lives, and fe80::/10), CGNAT
 * (100.64/10), multicast, documentation, benchmarking and other reserved ranges of the IANA
 * special-purpose registries, in IPv4, IPv6 and IPv4-mapped IPv6 form. Loopback is allowed
 * only in test mode (the fake push services of the test suite listen there); private ranges
 * stay refused even then.
 *
 * Registration checks the URL without DNS (literal addresses and names that cannot be
 * public, such as `localhost`); every send checks again after resolution, in
 * `safe-lookup.ts`, and connects to the address it checked.
 */
import { BlockList, isIP } from 'node:net';

/** Why an address is refused; null when it may be reached. */
export type ForbiddenReason = 'loopback' | 'private' | 'link-local' | 'shared' | 'multicast' | 'reserved';

const RANGES: Array<[ForbiddenReason, 'ipv4' | 'ipv6', string, number]> = [
  ['reserved', 'ipv4', '0.0.0.0', 8], // "this network"
  ['private', 'ipv4', '10.0.0.0', 8],
  ['shared', 'ipv4', '100.64.0.0', 10], // CGNAT, RFC 6598
  ['loopback', 'ipv4', '127.0.0.0', 8],
  ['link-local', 'ipv4', '169.254.0.0', 16],
  ['private', 'ipv4', '172.16.0.0', 12],
  ['reserved', 'ipv4', '192.0.0.0', 24], // IETF protocol assignments
  ['reserved', 'ipv4', '192.0.2.0', 24], // TEST-NET-1
  ['reserved', 'ipv4', '192.88.99.0', 24], // 6to4 relay anycast
  ['private', 'ipv4', '192.168.0.0', 16],
  ['reserved', 'ipv4', '198.18.0.0', 15], // benchmarking
  ['reserved', 'ipv4', '198.51.100.0', 24], // TEST-NET-2
  ['reserved', 'ipv4', '203.0.113.0', 24], // TEST-NET-3
  ['multicast', 'ipv4', '224.0.0.0', 4],
  ['reserved', 'ipv4', '240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
  ['loopback', 'ipv6', '::1', 128],
  // ::/96 (IPv4-compatible, deprecated) also covers :: itself. IPv4-mapped ::ffff:0:0/96
  // needs no row: BlockList matches a mapped address against the IPv4 rows above.
  ['reserved', 'ipv6', '::', 96],
  ['reserved', 'ipv6', '64:ff9b:1::', 48], // local-use NAT64
  ['reserved', 'ipv6', '100::', 64], // discard-only
  ['reserved', 'ipv6', '2001::', 23], // IETF protocol assignments, Teredo, ORCHID
  ['reserved', 'ipv6', '2001:db8::', 32], // documentation
  ['reserved', 'ipv6', '2002::', 16], // 6to4: embeds any IPv4 address
  ['reserved', 'ipv6', '3fff::', 20], // documentation
  ['reserved', 'ipv6', '5f00::', 16], // SRv6 SIDs
  ['private', 'ipv6', 'fc00::', 7], // unique local
  ['link-local', 'ipv6', 'fe80::', 10],
  ['reserved', 'ipv6', 'fec0::', 10], // site-local, deprecated
  ['multicast', 'ipv6', 'ff00::', 8],
];

const lists = new Map<ForbiddenReason, BlockList>();
for (const [reason, type, net, prefix] of RANGES) {
  let list = lists.get(reason);
  if (!list) lists.set(reason, (list = new BlockList()));
  list.addSubnet(net, prefix, type);
}
// Loopback first: test mode lets exactly that reason through, so it must win over ::/96.
const ORDER: ForbiddenReason[] = ['loopback', 'private', 'link-local', 'shared', 'multicast', 'reserved'];

const NAT64 = new BlockList();
NAT64.addSubnet('64:ff9b::', 96, 'ipv6');

/**
 * Where IPv6 reaches the internet: global unicast (2000::/3) — everything else IANA has not
 * allocated for it — plus IPv4-mapped addresses, judged by the IPv4 rows above.
 */
const REACHABLE6 = new BlockList();
REACHABLE6.addSubnet('2000::', 3, 'ipv6');
REACHABLE6.addSubnet('::ffff:0:0', 96, 'ipv6');

/** The 32 low bits of an IPv6 address, as dotted IPv4 (for the NAT64 well-known prefix). */
function embeddedIPv4(ip: string): string {
  let tail = ip.slice(ip.lastIndexOf(':') + 1);
  if (isIP(tail) === 4) return tail;
  const groups = ip.split(':');
  const lo = parseInt(groups.at(-1) || '0', 16);
  const hi = groups.length >= 2 ? parseInt(groups.at(-2) || '0', 16) : 0;
  tail = [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  return tail;
}

/**
 * Classify one IP address (no brackets). Not an IP address at all counts as reserved.
 * @param allowLoopback let loopback through (test mode only).
 */
export function forbiddenAddress(ip: string, allowLoopback: boolean): ForbiddenReason | null {
  const family = isIP(ip);
  if (family === 0) return 'reserved';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  // 64:ff9b::/96 reaches the IPv4 address it embeds through a NAT64 gateway: judge that one.
  if (type === 'ipv6' && NAT64.check(ip, 'ipv6')) return forbiddenAddress(embeddedIPv4(ip), allowLoopback);
  for (const reason of ORDER) {
    if (lists.get(reason)!.check(ip, type)) return reason === 'loopback' && allowLoopback ? null : reason;
  }
  return type === 'ipv6' && !REACHABLE6.check(ip, 'ipv6') ? 'reserved' : null;
}

/** Names that never resolve to a public address (RFC 6761, RFC 6762, RFC 8375, ICANN .internal). */
const LOCAL_NAME = /(^|\.)(localhost|local|internal|intranet|lan|home\.arpa|localdomain)\.?$/i;

/**
 * Check an endpoint URL without DNS, as registration does: a literal address by its range,
 * a name that cannot be public (`localhost`, `*.local`, single-label names) as loopback or
 * private. `localhost` passes in test mode; whatever a name resolves to is checked per send.
 * @returns why the URL is refused, or null.
 */
export function forbiddenEndpoint(url: URL, allowLoopback: boolean): ForbiddenReason | null {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (isIP(host)) return forbiddenAddress(host, allowLoopback);
  if (/^localhost\.?$/i.test(host) || /\.localhost\.?$/i.test(host)) return allowLoopback ? null : 'loopback';
  if (LOCAL_NAME.test(host) || !host.replace(/\.$/, '').includes('.')) return 'private';
  return null;
}
