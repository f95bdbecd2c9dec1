/**
 * The per-connection object: the product's heart, so it is one small plain object with a
 * fixed shape (all fields set in the constructor), no closures and no timers. The engine's
 * socket points at it (`ws.data` on Bun, a symbol property on Node's `ws`), it points back at
 * the socket, and the heartbeat links it into its idle list through `prev`/`next`.
 */
export class Conn {
  /**
   * Topics held: null, one topic name, or a Set from the second on. Most connections hold
   * one topic, and a one-entry Set costs more than the rest of this object.
   */
  topics: string | Set<string> | null = null;
  /** Last time anything (message or pong) arrived, ms since the epoch. */
  lastSeen: number;
  /** Heartbeat bucket: which slice of the ping interval this connection is pinged in. */
  bucket = -1;
  prev: Conn | null = null;
  next: Conn | null = null;
  /**
   * Publish rate (GCRA, one "theoretical arrival time" per namespace): the namespace this
   * connection published to first, and its arrival time in ms; later namespaces, rare, in
   * `pubMore`.
   */
  pubNs: string | null = null;
  pubTat = 0;
  pubMore: Map<string, number> | null = null;
  /**
   * Topics this connection is replaying (value Infinity: live messages wait in the store) or
   * has just replayed up to an offset (live messages up to it are repeats); null for almost
   * every connection.
   */
  skip: Map<string, number> | null = null;
  /**
   * The first offset of the user's own channel delivered live here (0: none yet). That
   * channel reaches the connection without a `sub`, so a `sub` with `since` on it replays
   * only what came before this offset: everything from it on has arrived live.
   */
  userFrom = 0;
  /** The access token's expiry, epoch seconds (0: none); the `auth` op moves it. */
  exp = 0;
  /** The token's session id (revocation closes a session's connections), or null. */
  sid: string | null = null;
  /** Set once the server has started closing it, so nothing more is queued. */
  closing = false;
  /** The engine's socket, set on open. */
  sock: unknown = null;

  /** @param id unique per process; 0 marks a refusal, an upgrade accepted only to be closed. */
  constructor(
    readonly id: number,
    readonly userId: string,
    readonly ip: string,
    now: number,
  ) {
    this.lastSeen = now;
  }
}

/** True when conn holds topic. */
export function holds(conn: Conn, topic: string): boolean {
  const t = conn.topics;
  return t === topic || (t instanceof Set && t.has(topic));
}

/** Number of topics conn holds. */
export function topicCount(conn: Conn): number {
  const t = conn.topics;
  return t === null ? 0 : typeof t === 'string' ? 1 : t.size;
}
