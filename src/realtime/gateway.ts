/**
 * The WebSocket gateway, runtime-neutral. An engine calls `authorize` before upgrading (a
 * refusal is an HTTP response: 401, 503 + Retry-After), then `open`, `message`, `pong` and
 * `closed` with the Conn it got back; the gateway talks to sockets only through the engine's
 * `SocketOps`, one shared object, so no connection carries closures of its own.
 *
 * Who may upgrade, and how a refusal is answered (an HTTP status, or for an `onebox.v1`
 * client an upgrade closed at once with a close code), is admission.ts.
 *
 * Tokens: every connection gets `hello` first, with its token's `exp`; the `auth` op replaces
 * the token on a live connection, and the heartbeat, as it pings a connection, closes it with
 * 4001 once its token has expired (no timer per connection). `closeUserConnections` is the
 * revocation seam: the app closes a user's (or a session's) connections with 4003.
 *
 * Backpressure: after each send the connection's queued bytes are checked; past
 * MAX_BUFFERED_BYTES the connection is closed with 1013 and counted, and, being marked
 * `closing` and removed from the registry, never receives another byte from us.
 *
 * Access: every `sub`, `history`, `recv` and `pub` first finds its topic's namespace rules
 * (channels.ts); an unknown namespace is refused, and access.ts decides the rest. A
 * membership removal reaches this process through the hub and drops the user's live
 * subscriptions with `membership_revoked`. The seam's types are in gateway-types.ts.
 */
import { CLOSE } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { Admission } from './admission.js';
import { holds, topicCount, type Conn } from './conn.js';
import { Heartbeat } from './heartbeat.js';
import { Channels, namespaceOf, type NamespaceRules } from './channels.js';
import { Delivery } from './delivery.js';
import { LocalHub, type Hub, type MembershipChange } from './hub.js';
import { MemberCache } from './members.js';
import type { GapReader } from './topic-order.js';
import { Registry } from './registry.js';
import { Presence } from './presence.js';
import { FrameError, frames, parseFrame, type ClientFrame } from './protocol.js';
import { Access, READ_REFUSED } from './access.js';
import {
  GatewayStats,
  type Authentication,
  type GatewayDeps,
  type GatewayOptions,
  type SocketOps,
  type UpgradeDecision,
  type UpgradeRequest,
} from './gateway-types.js';

export { REFUSING_MAX } from './admission.js';
export { GatewayStats } from './gateway-types.js';
export type { Authentication, GatewayDeps, GatewayOptions, SocketOps, SubTokenCheck, UpgradeDecision, UpgradeRequest } from './gateway-types.js';

/** Labels for the loop-block detector, made once rather than per message. */
const OP_LABEL = {
  sub: 'ws:sub',
  unsub: 'ws:unsub',
  pub: 'ws:pub',
  history: 'ws:history',
  recv: 'ws:recv',
  presence: 'ws:presence',
  ping: 'ws:ping',
  auth: 'ws:auth',
} as const;

/** How long a refused connection may take to read its close frame before it is terminated. */
const REFUSAL_CLOSE_MS = 5000;

const refuseAllTokens: NonNullable<GatewayDeps['authenticateToken']> = () =>
  Promise.resolve({ ok: false, code: 'invalid_token', message: 'tokens cannot be replaced on this server' });

/** A publish burst: twice the rate, i.e. two seconds' worth. */
const BURST_MS = 2000;

export class Gateway {
  readonly stats = new GatewayStats();
  readonly registry = new Registry();
  readonly local: LocalHub;
  private readonly channels: Channels;
  private readonly members: MemberCache;
  private readonly access: Access;
  private readonly delivery: Delivery | null;
  /** Delivers to users and topics: the local hub, or a backplane around it. */
  readonly hub: Hub;
  private readonly admission: Admission;
  private readonly heartbeat: Heartbeat;
  /** Members per presence topic; its grace periods and counts ride the heartbeat's tick. */
  readonly presence: Presence;
  /**
   * Connections we closed that have not finished the closing handshake, with the time they
   * are terminated at. A client that never reads again would otherwise hold its socket and
   * queued bytes until the runtime's own timeout (30 s in ws, none on Bun).
   */
  private readonly closingUntil = new Map<Conn, number>();
  /** Connections with an `auth` op in flight (one at a time each). */
  private readonly authing = new Set<Conn>();
  /** The close closeAll sent, for upgrades that open after it. */
  private drainClose: { code: number; reason: string } | null = null;
  private emptyWaiters: Array<() => void> = [];
  private ops: SocketOps | null = null;
  private readonly log: Logger;
  private readonly authenticateToken: NonNullable<GatewayDeps['authenticateToken']>;
  private readonly activity: (label: string) => void;

  constructor(private readonly config: GatewayOptions, deps: GatewayDeps) {
    this.log = deps.log;
    this.admission = new Admission(config, this.stats, deps.limits, deps.log, deps.authenticate);
    this.authenticateToken = deps.authenticateToken ?? refuseAllTokens;
    this.activity = deps.onActivity ?? (() => undefined);
    this.heartbeat = new Heartbeat(config.pingIntervalMs, config.idleTimeoutMs, {
      ping: (conn, now) => {
        if (conn.exp !== 0 && conn.exp * 1000 <= now) {
          this.stats.expired++;
          this.close(conn, CLOSE.tokenExpired, 'token_expired');
          return;
        }
        this.ops!.ping(conn.sock);
        this.stats.pingsSent++;
      },
      idle: (conn) => {
        this.stats.idleTimeouts++;
        this.forget(conn);
        this.ops!.terminate(conn.sock);
      },
      tick: (now) => {
        this.cutOffClosing(now);
        this.presence.tick(now);
      },
    });
    const h = deps.history;
    this.channels = deps.channels ?? new Channels();
    this.members = new MemberCache(deps.members ?? (() => Promise.resolve(false)));
    this.access = new Access(this.members, deps.verifySubToken ?? (() => Promise.resolve('invalid_subscription_token')));
    // Membership changes reach only the processes holding the user, so cached answers may
    // live only as long as the user has a connection here.
    this.registry.onInterest((kind, key, present) => {
      if (kind === 'user' && !present) this.members.forgetUser(key);
    });
    const readGap: GapReader = async (topic, after, before, limit) => {
      if (!h) return [];
      const page = await h.log.read(topic, after, Math.min(limit, before - after - 1), Number.MAX_SAFE_INTEGER);
      return page.entries.map((e) => ({ offset: e.offset, text: frames.msgRaw(topic, e.data, e.from, e.offset, e.ts) }));
    };
    this.local = new LocalHub(
      this.registry,
      (conn, text) => this.deliver(conn, text),
      readGap,
      (err) => this.log.error({ err }, 'filling a gap from the log failed'),
      (change) => this.membershipChanged(change),
      deps.createHub !== undefined,
    );
    this.hub = deps.createHub?.(this.local, this.registry) ?? this.local;
    // Presence hook: until namespace rules carry `presence`, `room:` topics have it.
    const p = deps.presence;
    this.presence = new Presence(
      this.registry,
      (conn, text) => this.deliver(conn, text),
      {
        on: p?.on ?? ((topic) => this.channels.rules(topic)?.presence === true),
        graceMs: p?.graceMs ?? 5000,
        eventsMax: p?.eventsMax ?? 1000,
      },
      p?.createSync,
    );
    this.delivery = h
      ? new Delivery({
          log: h.log,
          channels: this.channels,
          registry: this.registry,
          local: this.local,
          hub: this.hub,
          send: (conn, text) => this.deliver(conn, text),
          buffered: (conn) => (conn.sock === null ? 0 : this.ops!.buffered(conn.sock)),
          maxBufferedBytes: config.maxBufferedBytes,
          receipt: (userId, topic, offset) => h.receipts.add(userId, topic, offset),
        })
      : null;
  }

  /** Bind the engine's socket operations and start the heartbeat. */
  attach(ops: SocketOps): void {
    this.ops = ops;
    this.heartbeat.start();
  }

  /** The connection ceiling of this process. */
  get ceiling(): number {
    return this.admission.ceiling;
  }

  /** Decide an upgrade (admission.ts): a Conn to open, or the refusal to answer. */
  authorize(req: UpgradeRequest): Promise<UpgradeDecision> {
    return this.admission.authorize(req);
  }

  /**
   * The engine could not complete an authorized upgrade (bad handshake, client gone). Every
   * authorized upgrade ends in exactly one of `open` or `abort`; a second call is ignored,
   * so an engine may call this from every path that can lose the socket.
   */
  abort(conn: Conn): void {
    if (conn.sock !== null || conn.closing) return;
    conn.closing = true;
    this.admission.abort(conn);
  }

  open(conn: Conn, sock: unknown): void {
    if (conn.closing) {
      // Aborted already (the engine gave up on it): its slot is released, so drop the socket.
      this.ops!.terminate(sock);
      return;
    }
    const refusal = this.admission.refusalFor(conn);
    if (refusal) {
      conn.sock = sock;
      conn.closing = true;
      this.closingUntil.set(conn, Date.now() + Math.min(REFUSAL_CLOSE_MS, this.config.pingIntervalMs));
      this.ops!.close(sock, refusal.code, refusal.reason);
      return;
    }
    this.admission.opened();
    this.stats.open++;
    conn.sock = sock;
    this.registry.addUser(conn);
    const now = Date.now();
    this.heartbeat.add(conn, now);
    this.deliver(conn, frames.hello(this.config.pingIntervalMs, now, conn.exp));
    // Authorized before closeAll, opened after it (Bun runs `open` after `fetch` returned):
    // it gets the same close, or the drain would wait for it until the grace deadline.
    if (this.drainClose) this.close(conn, this.drainClose.code, this.drainClose.reason);
  }

  message(conn: Conn, data: string | Uint8Array, binary: boolean): void {
    this.stats.messagesIn++;
    this.heartbeat.touch(conn, Date.now());
    if (conn.closing) return;
    if (binary) {
      this.close(conn, CLOSE.unsupportedData, 'binary frames are not supported');
      return;
    }
    const text = typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
    const frame = parseFrame(text, this.config.maxJsonDepth);
    if (frame instanceof FrameError) {
      this.deliver(conn, frames.error(frame.code, frame.message, frame.id));
      return;
    }
    // Nothing a client sends may reach the process: an exception here would be uncaught in
    // ws's listener on Node. The connection is told, and it and every other stay up.
    try {
      this.handle(conn, frame);
    } catch (err) {
      this.failed(conn, err, frame.op, 'id' in frame ? frame.id : undefined);
    }
  }

  pong(conn: Conn): void {
    this.heartbeat.touch(conn, Date.now());
  }

  /** The engine reports a closed socket (whoever closed it). */
  closed(conn: Conn, code: number): void {
    this.closingUntil.delete(conn);
    if (conn.id === 0) {
      // A refusal (onebox.v1): never counted open, never registered.
      this.admission.refusalClosed(conn);
      conn.sock = null;
      return;
    }
    this.stats.closes.set(code, (this.stats.closes.get(code) ?? 0) + 1);
    this.forget(conn);
    this.registry.removeUser(conn);
    if (conn.sock !== null) {
      conn.sock = null;
      this.stats.open--;
      this.admission.releaseIp(conn);
    }
    if (this.stats.open === 0 && this.emptyWaiters.length > 0) {
      for (const w of this.emptyWaiters.splice(0)) w();
    }
  }

  /** Refuse new upgrades and close every connection with `code` (1001 shutdown, 1012 restart). */
  closeAll(code: number, reason: string): void {
    this.admission.draining = true;
    this.drainClose = { code, reason };
    this.heartbeat.stop();
    for (const conn of [...this.registry.all()]) this.close(conn, code, reason);
  }

  /**
   * Close a user's connections on this process (all, or those `which` selects) with `code`:
   * the app's revocation seam (logout, a revoked session, a deleted user). Returns how many.
   */
  closeUserConnections(userId: string, code: number, reason: string, which?: (c: { sid: string | null }) => boolean): number {
    const conns = this.registry.connsOf(userId);
    if (!conns) return 0;
    let n = 0;
    for (const conn of [...conns]) {
      if (conn.closing || (which && !which(conn))) continue;
      this.close(conn, code, reason);
      n++;
    }
    return n;
  }

  /** Resolve once no connection is open, or after timeoutMs. */
  waitEmpty(timeoutMs: number): Promise<boolean> {
    if (this.stats.open === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.emptyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Forcibly drop whatever is still open (after the drain window). */
  terminateAll(): void {
    for (const conn of [...this.registry.all()]) {
      this.forget(conn);
      if (conn.sock !== null) this.ops?.terminate(conn.sock);
    }
  }

  stop(): void {
    this.heartbeat.stop();
  }

  private handle(conn: Conn, f: ClientFrame): void {
    this.activity(OP_LABEL[f.op]);
    if (f.op === 'ping') {
      this.deliver(conn, frames.pong(f.id, Date.now()));
      return;
    }
    if (f.op === 'auth') {
      // One at a time: a verification in flight holds a few KiB, and a client that sent
      // thousands at once made the process grow by as many (a token is renewed every few
      // minutes, never in bursts).
      if (this.authing.has(conn)) {
        this.deliver(conn, frames.error('rate_limited', 'one auth op at a time: wait for the answer to the last one', f.id));
        return;
      }
      this.authing.add(conn);
      this.authenticateToken(f.token)
        .then((auth) => {
          this.authing.delete(conn);
          this.reauthenticated(conn, auth, f.id);
        })
        .catch((err: unknown) => {
          this.authing.delete(conn);
          this.failed(conn, err, f.op, f.id);
        });
      return;
    }
    if (f.op === 'unsub') {
      this.registry.unsubscribe(conn, f.topic);
      if (conn.skip?.delete(f.topic) && conn.skip.size === 0) conn.skip = null;
      this.deliver(conn, frames.ack('unsub', f.topic, f.id));
      return;
    }
    const rules = this.channels.rules(f.topic);
    if (rules === undefined) {
      // recv has no answer: a receipt for a topic nobody can hold is dropped.
      if (f.op !== 'recv') this.deliver(conn, frames.error('unknown_namespace', `no namespace "${namespaceOf(f.topic)}" is configured`, f.id));
      return;
    }
    const durable = this.delivery !== null && rules.history.size > 0;
    switch (f.op) {
      case 'sub':
      case 'history': {
        // A membership change while this sub is on its way (a lookup, a store read before
        // the join) may have missed it: `recheck` asks again once it has joined.
        const generation = this.members.generation;
        const granted = () => {
          const joined = this.read(conn, f, durable);
          if (f.op === 'history' || f.token !== undefined || rules.subscribe !== 'members') return joined;
          return (joined ?? Promise.resolve()).then(() => this.recheck(conn, f.topic, generation));
        };
        const access = this.access.mayRead(conn, f.topic, rules, f.token);
        if (access !== true && typeof access !== 'string') {
          access
            .then((a) => (conn.closing ? undefined : a === true ? granted() : this.deliver(conn, frames.error(a, READ_REFUSED[a], f.id))))
            .catch((err: unknown) => this.failed(conn, err, f.op, f.id));
        } else if (access === true) {
          granted()?.catch((err: unknown) => this.failed(conn, err, f.op, f.id));
        } else {
          this.deliver(conn, frames.error(access, READ_REFUSED[access], f.id));
        }
        return;
      }
      case 'recv':
        if (durable) this.delivery!.recv(conn, f.topic, f.offset);
        return;
      case 'presence':
        this.answerPresence(conn, f.topic, f.id);
        return;
      case 'pub': {
        const allowed = this.access.mayPublish(conn, f.topic, rules);
        if (allowed === true) {
          this.publish(conn, f, rules, durable);
          return;
        }
        if (allowed === false) {
          this.deliver(conn, frames.error('publish_forbidden', 'clients may not publish to this topic', f.id));
          return;
        }
        allowed
          .then((ok) => {
            if (conn.closing) return;
            if (!ok) this.deliver(conn, frames.error('publish_forbidden', 'only members may publish to this topic', f.id));
            else this.publish(conn, f, rules, durable);
          })
          .catch((err: unknown) => this.failed(conn, err, f.op, f.id));
        return;
      }
    }
  }

  /** The `auth` op's answer: the connection now runs on the new token, or keeps its old one. */
  private reauthenticated(conn: Conn, auth: Authentication, id: unknown): void {
    if (!auth.ok) {
      this.deliver(conn, frames.error(auth.code === 'unauthorized' ? 'invalid_token' : auth.code, auth.message, id));
    } else if (auth.userId !== conn.userId) {
      this.deliver(conn, frames.error('invalid_token', "the token is another user's", id));
    } else {
      conn.exp = auth.exp ?? 0;
      conn.sid = auth.sid ?? null;
      this.deliver(conn, frames.ack('auth', undefined, id, { exp: conn.exp }));
    }
  }

  /** The `presence` op: count and first page of a topic the connection holds. */
  private answerPresence(conn: Conn, topic: string, id: unknown): void {
    if (!this.presence.enabled(topic)) {
      this.deliver(conn, frames.error('no_presence', 'this topic does not track presence', id));
      return;
    }
    if (!holds(conn, topic)) {
      this.deliver(conn, frames.error('not_subscribed', 'subscribe to the topic first', id));
      return;
    }
    const answer = () => {
      const m = this.presence.members(topic);
      // Unsubscribed while the other processes' members were loading.
      if (!m) this.deliver(conn, frames.error('not_subscribed', 'subscribe to the topic first', id));
      else this.deliver(conn, frames.ack('presence', topic, id, { ...m }));
    };
    const loading = this.presence.loaded(topic);
    if (loading) loading.then(answer).catch((err: unknown) => this.failed(conn, err, 'presence', id));
    else answer();
  }

  /** `sub` or `history` once access is granted. */
  private read(conn: Conn, f: Extract<ClientFrame, { op: 'sub' | 'history' }>, durable: boolean): Promise<void> | undefined {
    if (f.op === 'history') {
      if (!durable) {
        this.deliver(conn, frames.error('no_history', 'this topic keeps no history', f.id));
        return undefined;
      }
      return this.delivery!.history(conn, f.topic, f.id, f.since, f.limit).catch((err: unknown) => this.failed(conn, err, f.op, f.id));
    }
    if (!holds(conn, f.topic) && topicCount(conn) >= this.config.maxSubscriptions) {
      this.deliver(conn, frames.error('too_many_subscriptions', `at most ${this.config.maxSubscriptions} topics`, f.id));
      return undefined;
    }
    if (durable) return this.delivery!.subscribe(conn, f.topic, f.id, f.since).catch((err: unknown) => this.failed(conn, err, f.op, f.id));
    this.registry.subscribe(conn, f.topic);
    this.deliver(conn, frames.ack('sub', f.topic, f.id));
    return undefined;
  }

  /**
   * A subscription granted by a membership lookup completed after a membership change
   * (here or on another process): the change may have been applied before the connection
   * joined, so the membership is asked again.
   */
  private async recheck(conn: Conn, topic: string, generation: number): Promise<void> {
    if (this.members.generation === generation || !holds(conn, topic)) return;
    if (!(await this.members.check(topic, conn.userId))) this.revoke(conn, topic);
  }

  private publish(conn: Conn, f: Extract<ClientFrame, { op: 'pub' }>, rules: NamespaceRules, durable: boolean): void {
    if (!this.takePublishToken(conn, namespaceOf(f.topic), rules.publishPerS ?? this.config.wsPublishPerS)) {
      this.deliver(conn, frames.error('rate_limited', 'publish rate exceeded', f.id));
      return;
    }
    if (durable) {
      this.delivery!.publish(conn, f.topic, f.data, f.id, f.key).catch((err: unknown) => this.failed(conn, err, f.op, f.id));
      return;
    }
    const m = { topic: f.topic, dataJson: JSON.stringify(f.data ?? null), from: conn.userId, offset: null, ts: Date.now() };
    this.deliver(conn, frames.ack('pub', f.topic, f.id));
    this.hub.publish(m).catch((err: unknown) => this.failed(conn, err, f.op, f.id));
  }

  /** A membership change reached this process: refresh the cache; a removal drops live subscriptions. */
  private membershipChanged(change: MembershipChange): void {
    this.members.invalidate(change.topic, change.userId);
    if (change.member) return;
    const conns = this.registry.connsOf(change.userId);
    if (!conns) return;
    for (const conn of [...conns]) if (holds(conn, change.topic)) this.revoke(conn, change.topic);
  }

  private revoke(conn: Conn, topic: string): void {
    this.registry.unsubscribe(conn, topic);
    // A replay in progress stops at its next message (delivery.ts, `paced`).
    if (conn.skip?.delete(topic) && conn.skip.size === 0) conn.skip = null;
    this.deliver(conn, frames.error('membership_revoked', 'no longer a member of this topic', undefined, topic));
  }

  /** A frame's handling threw or rejected: log it, tell that connection, keep serving. */
  private failed(conn: Conn, err: unknown, op: string, id: unknown): void {
    this.stats.frameFailures++;
    this.log.error({ err, conn: conn.id, op }, 'websocket frame failed');
    this.deliver(conn, frames.error('internal', 'the server could not handle this frame', id));
  }

  /**
   * Per connection and namespace, `rate` publishes a second with a burst of twice that
   * (GCRA: a publish is allowed while the theoretical arrival time stays within 2 s ahead).
   */
  private takePublishToken(conn: Conn, ns: string, rate: number): boolean {
    const now = Date.now();
    const first = conn.pubNs === null || conn.pubNs === ns;
    const tat = first ? conn.pubTat : (conn.pubMore?.get(ns) ?? 0);
    const next = Math.max(tat, now) + 1000 / rate;
    // The epsilon absorbs float error: 3 x (1000 / 3) may land a hair above 1000.
    if (next - now > BURST_MS + 1e-6) return false;
    if (first) {
      conn.pubNs = ns;
      conn.pubTat = next;
    } else {
      (conn.pubMore ??= new Map()).set(ns, next);
    }
    return true;
  }

  private deliver(conn: Conn, text: string): void {
    if (conn.closing || conn.sock === null) return;
    const ops = this.ops!;
    ops.send(conn.sock, text);
    this.stats.messagesOut++;
    if (ops.buffered(conn.sock) > this.config.maxBufferedBytes) {
      this.stats.slowConsumers++;
      this.log.warn({ conn: conn.id, user: conn.userId }, 'slow consumer dropped');
      this.close(conn, CLOSE.tryAgainLater, 'slow consumer');
    }
  }

  private close(conn: Conn, code: number, reason: string): void {
    if (conn.closing) return;
    this.forget(conn);
    // A queued close frame goes out after the queued data: a slow consumer that reads again
    // gets both. One that does not is terminated after one ping interval.
    this.closingUntil.set(conn, Date.now() + this.config.pingIntervalMs);
    this.ops!.close(conn.sock, code, reason);
  }

  private cutOffClosing(now: number): void {
    for (const [conn, until] of this.closingUntil) {
      if (until > now) continue;
      this.closingUntil.delete(conn);
      if (conn.sock !== null) this.ops!.terminate(conn.sock);
    }
  }

  /** Stop routing anything to this connection (it stays listed by user until closed). */
  private forget(conn: Conn): void {
    conn.closing = true;
    this.heartbeat.remove(conn);
    this.registry.unsubscribeAll(conn);
  }
}
