/** The Hono environment shared by every route, and the services routes reach. */
import type { Config } from '../config.js';
import type { Logger } from '../ops/logger.js';
import type { Lifecycle } from '../ops/lifecycle.js';
import type { Metrics } from '../ops/metrics.js';
import type { Db } from '../store/db.js';
import type { UserStore } from '../store/users.js';
import type { TokenService } from './auth/tokens.js';

/** What the engine hands the app with each request. */
export interface Bindings {
  /** The peer address of the TCP connection. */
  ip: string;
}

export interface AppEnv {
  Bindings: Bindings;
  Variables: {
    requestId: string;
    userId: string;
  };
}

export interface Services {
  config: Config;
  log: Logger;
  db: Db;
  users: UserStore;
  tokens: TokenService;
  metrics: Metrics;
  lifecycle: Lifecycle;
}

/** The client address: the peer, or the last X-Forwarded-For hop when TRUST_PROXY is on. */
export function clientIp(trustProxy: boolean, peer: string, forwarded: string | null | undefined): string {
  if (trustProxy && forwarded) {
    const hops = forwarded.split(',');
    const last = hops[hops.length - 1]?.trim();
    if (last) return last;
  }
  return peer;
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}
