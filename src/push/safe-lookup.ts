/**
 * DNS resolution for user-supplied push endpoints, checked before any connection: every
 * address a name resolves to must pass `forbiddenAddress`, or the send is refused. The
 * checked addresses are handed to the socket as its `lookup` result, so the connection goes
 * to an address that was checked: a name that answers a public address to a first query
 * and a private one to the next (DNS rebinding) cannot slip between check and connect.
 */
import { promises as dns } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { forbiddenAddress, type ForbiddenReason } from './endpoint-policy.js';

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolve a host name to all its addresses (injectable: tests never use real DNS). */
export type Resolve = (hostname: string) => Promise<ResolvedAddress[]>;

/** The system resolver (getaddrinfo, as sockets use by default), every address. */
export const systemResolve: Resolve = (hostname) => dns.lookup(hostname, { all: true, verbatim: true });

/** The `code` of ForbiddenEndpointError. */
export const FORBIDDEN = 'ERR_PUSH_ENDPOINT_FORBIDDEN';

/** A push endpoint that resolves to an address it must not reach. */
export class ForbiddenEndpointError extends Error {
  override name = 'ForbiddenEndpointError';
  readonly code = FORBIDDEN;
  constructor(
    readonly host: string,
    readonly address: string,
    readonly reason: ForbiddenReason,
  ) {
    super(`push endpoint ${host} resolves to a ${reason} address`);
  }
}

/**
 * Resolve `hostname` (a literal address stands for itself) and check every address.
 * @throws ForbiddenEndpointError when any address is refused; the resolver's error when it fails.
 */
export async function resolveChecked(resolve: Resolve, hostname: string, allowLoopback: boolean): Promise<ResolvedAddress[]> {
  const host = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
  const family = isIP(host);
  const addresses = family ? [{ address: host, family }] : await resolve(host);
  if (addresses.length === 0) throw Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' });
  for (const a of addresses) {
    const reason = forbiddenAddress(a.address, allowLoopback);
    if (reason) throw new ForbiddenEndpointError(host, a.address, reason);
  }
  return addresses;
}

/**
 * A `lookup` for `http.request`/`net.connect` that only ever yields checked addresses.
 * Sockets skip `lookup` for a literal address: check those with `resolveChecked` first.
 */
export function guardedLookup(resolve: Resolve, allowLoopback: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolveChecked(resolve, hostname, allowLoopback).then(
      (all) => {
        const wanted = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all;
        if (wanted.length === 0) {
          callback(Object.assign(new Error(`no IPv${options.family} address for ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
        } else if (options.all) {
          callback(null, wanted);
        } else {
          callback(null, wanted[0]!.address, wanted[0]!.family);
        }
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}
