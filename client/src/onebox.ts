/**
 * The client: one WebSocket at a time, replaced after every close with backoff (backoff.ts);
 * every topic resubscribed with `since` after a reconnect and delivered in offset order
 * (topic.ts); publishes and other requests kept until acknowledged or past their deadline,
 * and sent again on the next connection (a publish keeps its idempotency key, so a retry
 * never publishes twice). Dead connections are found without protocol pings (browsers and
 * React Native do not expose them): after `pingIntervalMs` without a frame the client sends
 * `{"op":"ping"}`, and after another interval without one it gives the socket up.
 */
import { BACKOFF_DEFAULTS, backoffDelay, hintedDelay, parseCloseReason, restartDelay, suspendedDelay, type ResolvedBackoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { OneboxError } from './errors.js';
import { loadPosition, memoryStorage } from './storage.js';
import { Subscription } from './subscription.js';
import { TopicOrder } from './topic.js';
import type {
  Clock,
  ConnectionState,
  Message,
  OneboxEvents,
  OneboxOptions,
  PresenceResult,
  PublishOptions,
  PublishResult,
  StateInfo,
  StorageAdapter,
  SubscribeOptions,
  TokenReason,
  WebSocketCtor,
  WebSocketLike,
} from './types.js';

/** The subprotocol the client offers: the server then reports refusals as close codes. */
export const SUBPROTOCOL = 'onebox.v1';
/** Close codes the client acts on (docs/protocol.md, "Close codes"). */
export const CLOSE = { NORMAL: 1000, RESTART: 1012, TRY_AGAIN_LATER: 1013, TOKEN_EXPIRED: 4001, UNAUTHORIZED: 4003 } as const;
/** Errors a publish is retried after (on the next connection or after a pause), not rejected for. */
const RETRYABLE = new Set(['rate_limited', 'store_unavailable', 'not_ready']);

type Frame = Record<string, any>;

interface Conn {
  ws: WebSocketLike;
  /** Wall time of the last frame received. */
  lastRx: number;
  pingSent: boolean;
  hello: boolean;
  /** Every topic's `sub` of the first batch is answered: requests may go. */
  ready: boolean;
  subsInFlight: number;
  openedAt: number;
  watchdog?: unknown;
  connectTimer?: unknown;
  refreshTimer?: unknown;
  /** When the connection's token expires, on this clock (ms). */
  expAt?: number;
}

interface Topic {
  name: string;
  subs: Set<Subscription<any>>;
  order: TopicOrder;
  recover: boolean;
  token: string | undefined;
  /** Resolves once the stored position is read. */
  loaded: Promise<void>;
  isLoaded: boolean;
  /** The `sub` of this topic on the current connection: its id, and whether it carried `since`. */
  subId?: string;
  sentSince: boolean;
  acked: boolean;
  gapTimer?: unknown;
  historyInFlight: boolean;
  /** Receipts (user channel): the highest offset handled, and the highest sent on this connection. */
  recvDue: number;
  recvSent: number;
  saveDue: boolean;
}

interface Request {
  id: string;
  frame: Frame;
  resolve: (ack: Frame) => void;
  reject: (err: Error) => void;
  deadline: number;
  timer?: unknown;
  /** A retry after `rate_limited` on the same connection. */
  retryTimer?: unknown;
  /** Sent again on the next connection when unanswered (false: dropped with the connection). */
  resend: boolean;
  sentOn?: Conn;
}

const defaultClock: Clock = {
  setTimeout: (fn, ms) => (globalThis as any).setTimeout(fn, ms),
  clearTimeout: (h) => (globalThis as any).clearTimeout(h),
  now: () => Date.now(),
};

export class Onebox extends Emitter<OneboxEvents> {
  private readonly WS: WebSocketCtor;
  private readonly storage: StorageAdapter;
  private readonly prefix: string;
  private readonly backoff: ResolvedBackoff;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly timeouts: { publish: number; request: number; connect: number; flush: number; gapFill: number };
  private readonly clientId: string;

  private _state: ConnectionState = 'disconnected';
  private conn: Conn | undefined;
  private readonly topics = new Map<string, Topic>();
  private readonly requests = new Map<string, Request>();
  private seq = 0;
  private attemptSeq = 0;
  private attempts = 0;
  private disconnectedSince: number | undefined;
  private reconnectTimer: unknown;
  private flushTimer: unknown;
  private paused = false;
  private online = true;
  private closed = false;
  private unauthorized = false;
  /** A 4001 made the client refresh its token; a second before a `hello` means log in again. */
  private refreshedAfterExpiry = false;
  private pingIntervalMs: number;
  /** Server clock minus this clock, from the last `hello` (ms). */
  private skewMs = 0;
  private readonly pendingSaves = new Set<Topic>();

  constructor(private readonly opts: OneboxOptions) {
    super();
    const WS = opts.WebSocket ?? ((globalThis as any).WebSocket as WebSocketCtor | undefined);
    if (!WS) throw new TypeError('onebox-client: no global WebSocket; pass options.WebSocket (e.g. the `ws` package on Node 20)');
    this.WS = WS;
    this.storage = opts.storage ?? memoryStorage();
    this.prefix = opts.storagePrefix ?? 'onebox';
    this.backoff = { ...BACKOFF_DEFAULTS, ...opts.backoff };
    this.clock = opts.clock ?? defaultClock;
    this.random = opts.random ?? Math.random;
    this.timeouts = {
      publish: opts.publishTimeoutMs ?? 15_000,
      request: opts.requestTimeoutMs ?? 10_000,
      connect: opts.connectTimeoutMs ?? 10_000,
      flush: opts.flushMs ?? 100,
      gapFill: opts.gapFillMs ?? 500,
    };
    this.pingIntervalMs = opts.pingIntervalMs ?? 30_000;
    this.clientId = Math.floor(this.random() * 36 ** 8).toString(36).padStart(8, '0');
    // Connect once the caller has attached its listeners.
    void Promise.resolve().then(() => this.connect('connect'));
  }

  /** The current connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /**
   * Receive a topic's messages, each once and in offset order, from the stored position on
   * (`recover`, the default) or from now.
   */
  subscribe<T = unknown>(topic: string, onMessage: (msg: Message<T>) => void, options: SubscribeOptions = {}): Subscription<T> {
    if (this.closed) throw new OneboxError('closed', 'the client is closed');
    const sub = new Subscription<T>(topic, onMessage, (s) => this.removeSub(s));
    let t = this.topics.get(topic);
    if (t) {
      t.subs.add(sub);
      if (options.token !== undefined) t.token = options.token;
      return sub;
    }
    const recover = options.recover ?? true;
    t = {
      name: topic,
      subs: new Set([sub]),
      order: new TopicOrder(),
      recover,
      token: options.token,
      loaded: Promise.resolve(),
      isLoaded: !recover,
      sentSince: false,
      acked: false,
      historyInFlight: false,
      recvDue: 0,
      recvSent: 0,
      saveDue: false,
    };
    this.topics.set(topic, t);
    const topicState = t;
    if (recover) {
      topicState.loaded = loadPosition(this.storage, this.key(topic))
        .catch((err: unknown) => this.emit('error', new OneboxError('storage_failed', `reading the position of ${topic}: ${String(err)}`, topic)))
        .then((p) => {
          if (p && topicState.order.position === undefined) topicState.order.position = p;
          topicState.isLoaded = true;
          if (this.topics.get(topic) === topicState) this.sendSub(topicState);
        });
    } else {
      this.sendSub(topicState);
    }
    return sub;
  }

  /**
   * Publish, retried on every reconnect with the same idempotency key until the server
   * acknowledges or `timeoutMs` passes. Resolves with the message's offset (namespaces with
   * history); rejects with a OneboxError (`timeout`, `publish_forbidden`, …).
   */
  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const key = options.key ?? `${this.clientId}-${Date.now().toString(36)}-${(this.seq + 1).toString(36)}`;
    return this.request({ op: 'pub', topic, data, key }, options.timeoutMs ?? this.timeouts.publish, true).then((ack) => ({
      ...(typeof ack.offset === 'number' ? { offset: ack.offset } : {}),
      ...(typeof ack.epoch === 'string' ? { epoch: ack.epoch } : {}),
    }));
  }

  /** Who is in a subscribed topic now (the `presence` op); keep the list with the subscription's `presence` events. */
  async presence(topic: string): Promise<PresenceResult> {
    const ack = await this.request({ op: 'presence', topic }, this.timeouts.request, true);
    return { count: ack.count as number, members: ack.members as PresenceResult['members'], more: ack.more === true };
  }

  /** The app goes to the background: close the connection cleanly (1000) and stop every timer. */
  pause(): void {
    if (this.closed || this.paused) return;
    this.paused = true;
    this.flush();
    this.stopAll(CLOSE.NORMAL, 'paused');
    this.setState('disconnected', { reason: 'paused' });
  }

  /** The app is in the foreground again (or logged in again after `unauthorized`): reconnect at once. */
  resume(): void {
    if (this.closed) return;
    this.paused = false;
    this.unauthorized = false;
    this.refreshedAfterExpiry = false;
    this.connectNow();
  }

  /** The network came or went (NetInfo, `online`/`offline` events): offline stops the retries. */
  setOnline(online: boolean): void {
    if (this.closed || this.online === online) return;
    this.online = online;
    if (!online) {
      this.clear('reconnectTimer');
      if (!this.conn) this.setState('disconnected', { reason: 'offline' });
      return;
    }
    this.connectNow();
  }

  /** Close for good: the connection, every timer, every pending request (rejected with `closed`). */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.stopAll(CLOSE.NORMAL, 'closed');
    for (const r of this.requests.values()) r.reject(new OneboxError('closed', 'the client was closed'));
    this.requests.clear();
    this.setState('closed', { reason: 'closed' });
  }

  // --- connecting ---------------------------------------------------------------------------

  private stopped(): boolean {
    return this.closed || this.paused || !this.online || this.unauthorized;
  }

  private connectNow(): void {
    if (this.stopped() || this.conn) return;
    this.clear('reconnectTimer');
    this.attempts = 0;
    void this.connect('connect');
  }

  private async connect(reason: TokenReason): Promise<void> {
    if (this.stopped() || this.conn) return;
    const attempt = ++this.attemptSeq;
    this.setState('connecting', {});
    let token: string;
    try {
      token = await this.opts.getToken({ reason });
    } catch (err) {
      if (attempt !== this.attemptSeq || this.stopped()) return;
      this.emit('error', new OneboxError('token_unavailable', `getToken failed: ${String(err)}`));
      this.scheduleReconnect({ reason: 'token_unavailable' });
      return;
    }
    if (attempt !== this.attemptSeq || this.stopped() || this.conn) return;
    const url = `${this.opts.url}${this.opts.url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url, [SUBPROTOCOL]);
    } catch (err) {
      this.emit('error', new OneboxError('connect_failed', String(err)));
      this.scheduleReconnect({ reason: 'connect_failed' });
      return;
    }
    const conn: Conn = { ws, lastRx: this.clock.now(), pingSent: false, hello: false, ready: false, subsInFlight: 0, openedAt: 0 };
    this.conn = conn;
    conn.connectTimer = this.clock.setTimeout(() => this.drop(conn, { reason: 'connect_timeout' }), this.timeouts.connect);
    ws.onopen = () => {
      if (this.conn !== conn) return;
      conn.openedAt = this.clock.now();
      conn.lastRx = conn.openedAt;
      this.armWatchdog(conn);
      // The user channel first: its live messages then wait for the replay (docs/protocol.md).
      const topics = [...this.topics.values()].sort((a, b) => Number(b.name.startsWith('user:')) - Number(a.name.startsWith('user:')));
      for (const t of topics) this.sendSub(t);
      this.maybeReady(conn);
    };
    ws.onmessage = (ev) => {
      if (this.conn !== conn || typeof ev.data !== 'string') return;
      conn.lastRx = this.clock.now();
      conn.pingSent = false;
      let f: Frame;
      try {
        f = JSON.parse(ev.data) as Frame;
      } catch {
        return;
      }
      if (typeof f === 'object' && f !== null) this.onFrame(conn, f);
    };
    ws.onclose = (ev) => {
      if (this.conn === conn) this.onClose(conn, ev.code, ev.reason ?? '');
    };
    ws.onerror = () => undefined; // a close follows
  }

  private onClose(conn: Conn, code: number, reason: string): void {
    const { code: errorCode, retryS } = parseCloseReason(reason);
    const info: StateInfo = { code, ...(errorCode ? { reason: errorCode } : {}) };
    if (code === CLOSE.UNAUTHORIZED || (code === CLOSE.TOKEN_EXPIRED && this.refreshedAfterExpiry)) {
      this.teardown(conn);
      this.loggedOut(info);
      return;
    }
    if (code === CLOSE.TOKEN_EXPIRED) {
      // One refresh, then at once: the old token is the only reason this connection ended.
      this.refreshedAfterExpiry = true;
      this.teardown(conn);
      this.disconnectedSince ??= this.clock.now();
      this.setState('disconnected', { ...info, retryInMs: 0 });
      void this.connect('expired');
      return;
    }
    // A connection that held for a while starts the backoff over; one that flaps keeps climbing.
    if (conn.hello && this.clock.now() - conn.openedAt >= this.backoff.baseMs * 5) this.attempts = 0;
    let delay: number | undefined;
    if (code === CLOSE.RESTART) delay = restartDelay(this.backoff, this.random);
    else if (retryS !== undefined) delay = Math.max(hintedDelay(retryS, this.random), 0);
    this.drop(conn, info, delay);
  }

  /** Give the connection up (closed, dead, timed out) and plan the next attempt. */
  private drop(conn: Conn, info: StateInfo, delay?: number): void {
    if (this.conn !== conn) return;
    this.teardown(conn);
    this.scheduleReconnect(info, delay);
  }

  private teardown(conn: Conn, code = 4000, reason = 'client_gone'): void {
    conn.ws.onopen = conn.ws.onmessage = conn.ws.onclose = null;
    try {
      if (conn.ws.readyState <= 1) conn.ws.close(code, reason);
    } catch {
      /* already closing */
    }
    for (const h of [conn.watchdog, conn.connectTimer, conn.refreshTimer]) if (h !== undefined) this.clock.clearTimeout(h);
    if (this.conn === conn) this.conn = undefined;
    for (const t of this.topics.values()) {
      if (t.gapTimer !== undefined) this.clock.clearTimeout(t.gapTimer);
      t.gapTimer = undefined;
      t.subId = undefined;
      t.acked = false;
      t.historyInFlight = false;
      t.recvSent = 0;
      t.order.reset();
    }
    for (const r of [...this.requests.values()]) {
      if (!r.resend && r.sentOn === conn) this.settle(r.id)?.reject(new OneboxError('disconnected', 'the connection closed before the answer'));
    }
  }

  private scheduleReconnect(info: StateInfo, hinted?: number): void {
    this.disconnectedSince ??= this.clock.now();
    if (this.stopped()) {
      if (!this.closed && !this.unauthorized) this.setState('disconnected', { ...info, reason: this.paused ? 'paused' : 'offline' });
      return;
    }
    const suspended = this.clock.now() - this.disconnectedSince >= this.backoff.suspendAfterMs;
    const delay = hinted ?? (suspended ? suspendedDelay(this.backoff, this.random) : backoffDelay(this.backoff, this.attempts, this.random));
    if (hinted === undefined) this.attempts++;
    this.setState(suspended ? 'suspended' : 'disconnected', { ...info, retryInMs: delay });
    this.clear('reconnectTimer');
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.connect('connect');
    }, delay);
  }

  private loggedOut(info: StateInfo): void {
    this.unauthorized = true;
    this.refreshedAfterExpiry = false;
    this.stopAll(CLOSE.NORMAL, 'unauthorized');
    this.setState('closed', { ...info, reason: info.reason ?? 'unauthorized' });
    this.emit('unauthorized', info);
  }

  /** Close the socket and clear every timer (pause, close, log out); requests keep their deadlines' time. */
  private stopAll(code: number, reason: string): void {
    this.attemptSeq++;
    if (this.conn) this.teardown(this.conn, code, reason);
    this.clear('reconnectTimer');
    this.clear('flushTimer');
    for (const r of this.requests.values()) this.clearDeadline(r);
  }

  private clear(name: 'reconnectTimer' | 'flushTimer'): void {
    if (this[name] !== undefined) this.clock.clearTimeout(this[name]);
    this[name] = undefined;
  }

  private setState(state: ConnectionState, info: StateInfo): void {
    if (state === this._state && state !== 'disconnected' && state !== 'suspended') return;
    this._state = state;
    this.emit('state', state, info);
  }

  // --- the live connection ------------------------------------------------------------------

  private onFrame(conn: Conn, f: Frame): void {
    // A server from before `hello` (protocol v1 without it): its first frame says connected.
    if (!conn.hello && f.op !== 'hello') this.onHello(conn, {});
    switch (f.op) {
      case 'hello':
        return this.onHello(conn, f);
      case 'msg':
        return this.onMsg(f);
      case 'ack':
        if (f.ack === 'sub') return this.onSubAck(conn, f);
        return this.answer(f);
      case 'error':
        if (typeof f.id === 'string' && f.id.startsWith('s')) return this.onSubError(conn, f);
        if (f.id === undefined && typeof f.topic === 'string') return this.onRevoked(f.topic, f);
        return this.answer(f);
      case 'presence':
        return this.onPresence(f);
      case 'pong':
        return;
    }
  }

  private onHello(conn: Conn, f: Frame): void {
    conn.hello = true;
    if (conn.connectTimer !== undefined) this.clock.clearTimeout(conn.connectTimer);
    conn.connectTimer = undefined;
    this.refreshedAfterExpiry = false;
    this.disconnectedSince = undefined;
    if (typeof f.pingIntervalMs === 'number' && f.pingIntervalMs > 0) this.pingIntervalMs = f.pingIntervalMs;
    this.armWatchdog(conn);
    if (typeof f.exp === 'number') this.planRefresh(conn, f.exp, typeof f.ts === 'number' ? f.ts : undefined);
    this.setState('connected', {});
  }

  /**
   * Fetch a new token before this one expires and hand it to the live connection (`auth`).
   * The moment is random within the token's last quarter-to-half of life (at most the last
   * two minutes), so a fleet whose tokens were issued together does not refresh together.
   */
  private planRefresh(conn: Conn, exp: number, serverTs?: number): void {
    if (conn.refreshTimer !== undefined) this.clock.clearTimeout(conn.refreshTimer);
    conn.refreshTimer = undefined;
    // exp 0: a token without expiry.
    if (!(exp > 0)) return;
    const now = this.clock.now();
    if (serverTs !== undefined) this.skewMs = serverTs - now;
    conn.expAt = exp * 1000 - this.skewMs;
    const remaining = conn.expAt - now;
    if (remaining <= 0) return; // the server closes with 4001 on its next tick
    const lead = Math.min(remaining / 4, 60_000);
    this.armRefresh(conn, Math.max(0, remaining - lead - this.random() * lead));
  }

  private armRefresh(conn: Conn, delay: number): void {
    conn.refreshTimer = this.clock.setTimeout(() => {
      conn.refreshTimer = undefined;
      void this.refresh(conn);
    }, delay);
  }

  private async refresh(conn: Conn): Promise<void> {
    let code = 'refresh_failed';
    try {
      const token = await this.opts.getToken({ reason: 'expiring' });
      if (this.conn !== conn) return;
      const ack = await this.request({ op: 'auth', token }, this.timeouts.request, false);
      if (this.conn === conn && typeof ack.exp === 'number') this.planRefresh(conn, ack.exp);
      return;
    } catch (err) {
      const e = err instanceof OneboxError ? err : new OneboxError('refresh_failed', `getToken failed: ${String(err)}`);
      code = e.code;
      this.emit('error', e);
    }
    // A refused token (invalid, revoked) is not retried: the connection closes with 4001 at its
    // exp, and the one refresh after that decides. A passing failure is, while time is left.
    const remaining = (conn.expAt ?? 0) - this.clock.now();
    if (this.conn === conn && (code === 'refresh_failed' || RETRYABLE.has(code) || code === 'timeout') && remaining > 2000) {
      this.armRefresh(conn, Math.min(remaining / 2, 30_000) * (0.5 + this.random() / 2));
    }
  }

  /**
   * No frame for a ping interval: send `ping`; none for another: the connection is dead (a
   * phone that changed networks, a NAT that forgot it) even though the socket says open.
   * One timer per client, re-armed at the moment the silence would reach an interval.
   */
  private armWatchdog(conn: Conn): void {
    if (conn.watchdog !== undefined) this.clock.clearTimeout(conn.watchdog);
    const due = Math.max(0, conn.lastRx + this.pingIntervalMs - this.clock.now());
    conn.watchdog = this.clock.setTimeout(() => {
      conn.watchdog = undefined;
      if (this.conn !== conn) return;
      if (this.clock.now() - conn.lastRx < this.pingIntervalMs) return this.armWatchdog(conn);
      if (conn.pingSent) return this.drop(conn, { reason: 'dead' });
      conn.pingSent = true;
      this.send(conn, { op: 'ping' });
      conn.watchdog = this.clock.setTimeout(() => {
        conn.watchdog = undefined;
        if (this.conn !== conn) return;
        if (conn.pingSent) this.drop(conn, { reason: 'dead' });
        else this.armWatchdog(conn);
      }, this.pingIntervalMs);
    }, due);
  }

  private send(conn: Conn, frame: Frame): void {
    try {
      conn.ws.send(JSON.stringify(frame));
    } catch {
      /* the close event follows */
    }
  }

  // --- topics -------------------------------------------------------------------------------

  private key(topic: string): string {
    return `${this.prefix}:pos:${topic}`;
  }

  private sendSub(t: Topic): void {
    const conn = this.conn;
    if (!conn || conn.openedAt === 0 || !t.isLoaded || t.subId !== undefined) return;
    t.subId = `s${++this.seq}`;
    t.acked = false;
    const p = t.recover ? t.order.position : undefined;
    t.sentSince = p !== undefined;
    conn.subsInFlight++;
    this.send(conn, { op: 'sub', id: t.subId, topic: t.name, ...(p ? { since: { offset: p.offset, epoch: p.epoch } } : {}), ...(t.token ? { token: t.token } : {}) });
  }

  private maybeReady(conn: Conn): void {
    if (conn.ready || conn.subsInFlight > 0) return;
    conn.ready = true;
    for (const r of this.requests.values()) if (r.sentOn !== conn) this.sendRequest(r);
  }

  private topicOfSub(id: unknown): Topic | undefined {
    for (const t of this.topics.values()) if (t.subId === id) return t;
    return undefined;
  }

  private onSubAck(conn: Conn, f: Frame): void {
    const t = this.topicOfSub(f.id);
    conn.subsInFlight = Math.max(0, conn.subsInFlight - 1);
    if (t) {
      t.acked = true;
      const head = { topic: t.name, ...(typeof f.offset === 'number' ? { offset: f.offset } : {}), ...(typeof f.epoch === 'string' ? { epoch: f.epoch } : {}) };
      for (const s of t.subs) s.fire('subscribed', head);
      const { deliver, gap } = t.order.ack(f, t.sentSince);
      if (gap) for (const s of t.subs) s.fire('gap', { topic: t.name, since: gap.since, offset: f.offset, epoch: f.epoch });
      this.deliver(t, deliver);
      this.afterDelivery(t);
      if (t.order.position && !t.sentSince) this.markSave(t);
    }
    this.maybeReady(conn);
  }

  private onSubError(conn: Conn, f: Frame): void {
    const t = this.topicOfSub(f.id);
    conn.subsInFlight = Math.max(0, conn.subsInFlight - 1);
    if (t) this.dropTopic(t, new OneboxError(String(f.code), String(f.message ?? f.code), t.name));
    this.maybeReady(conn);
  }

  private onRevoked(topic: string, f: Frame): void {
    const t = this.topics.get(topic);
    if (t) this.dropTopic(t, new OneboxError(String(f.code), String(f.message ?? f.code), topic));
  }

  /** The server refused or revoked the topic: its subscriptions end with an `error` event. */
  private dropTopic(t: Topic, err: OneboxError): void {
    this.topics.delete(t.name);
    if (t.gapTimer !== undefined) this.clock.clearTimeout(t.gapTimer);
    for (const s of t.subs) {
      s.active = false;
      s.fire('error', err);
    }
  }

  private removeSub(s: Subscription<any>): void {
    const t = this.topics.get(s.topic);
    if (!t || !t.subs.delete(s) || t.subs.size > 0) return;
    this.topics.delete(t.name);
    if (t.gapTimer !== undefined) this.clock.clearTimeout(t.gapTimer);
    this.saveNow(t);
    if (this.conn && t.subId !== undefined) this.send(this.conn, { op: 'unsub', id: `u${++this.seq}`, topic: t.name });
  }

  private onMsg(f: Frame): void {
    const t = this.topics.get(f.topic);
    if (!t) return;
    const m: Message = { topic: f.topic, data: f.data, ts: f.ts };
    if (typeof f.offset === 'number') m.offset = f.offset;
    if (typeof f.from === 'string') m.from = f.from;
    this.deliver(t, t.order.accept(m));
    this.afterDelivery(t);
  }

  private deliver(t: Topic, messages: Message[]): void {
    for (const m of messages) {
      for (const s of t.subs) {
        try {
          s.handler(m);
        } catch (err) {
          s.fire('error', new OneboxError('handler_failed', `the message handler threw: ${String(err)}`, t.name));
        }
      }
      if (m.offset !== undefined) {
        if (t.name.startsWith('user:')) {
          t.recvDue = Math.max(t.recvDue, m.offset);
          this.scheduleFlush();
        }
        this.markSave(t);
      }
    }
  }

  /** After messages were handled: the `recovered` event, and a gap the server does not fill. */
  private afterDelivery(t: Topic): void {
    const done = t.order.caughtUp();
    if (done) for (const s of t.subs) s.fire('recovered', { topic: t.name, ...done });
    if (t.order.hasGap() && t.acked && t.gapTimer === undefined && !t.historyInFlight) {
      t.gapTimer = this.clock.setTimeout(() => {
        t.gapTimer = undefined;
        void this.fillGap(t);
      }, this.timeouts.gapFill);
    }
  }

  /** Read the missing offsets with `history`, page by page; what the log no longer has is a gap. */
  private async fillGap(t: Topic): Promise<void> {
    if (!t.order.hasGap() || this.topics.get(t.name) !== t) return;
    if (t.order.replaying()) return this.afterDelivery(t);
    const p = t.order.position!;
    t.historyInFlight = true;
    let ack: Frame;
    try {
      ack = await this.request({ op: 'history', topic: t.name, since: { offset: p.offset, epoch: p.epoch }, limit: 100, ...(t.token ? { token: t.token } : {}) }, this.timeouts.request, false);
    } catch {
      t.historyInFlight = false;
      return; // the connection went; the next one resubscribes with since
    }
    t.historyInFlight = false;
    if (this.topics.get(t.name) !== t) return;
    if (ack.recovered !== false) {
      for (const e of (ack.messages ?? []) as Frame[]) {
        this.deliver(t, t.order.accept({ topic: t.name, offset: e.offset, data: e.data, ts: e.ts, ...(typeof e.from === 'string' ? { from: e.from } : {}) }));
      }
    }
    // A page that brought nothing new cannot be followed by a better one: give the gap up.
    const stuck = t.order.position!.offset === p.offset;
    if (t.order.hasGap() && (ack.recovered === false || ack.more !== true || stuck)) {
      const skipped = t.order.skipGap();
      for (const s of t.subs) s.fire('gap', { topic: t.name, since: skipped.since, offset: skipped.offset, epoch: p.epoch });
      this.deliver(t, skipped.deliver);
    }
    if (t.order.hasGap()) return this.fillGap(t);
    this.afterDelivery(t);
  }

  private onPresence(f: Frame): void {
    const t = this.topics.get(f.topic);
    if (!t) return;
    const ev = { topic: f.topic as string, ...(typeof f.join === 'string' ? { join: f.join } : {}), ...(typeof f.leave === 'string' ? { leave: f.leave } : {}), ...(typeof f.count === 'number' ? { count: f.count } : {}) };
    for (const s of t.subs) s.fire('presence', ev);
  }

  // --- receipts and positions ---------------------------------------------------------------

  private markSave(t: Topic): void {
    if (!t.recover) return;
    t.saveDue = true;
    this.pendingSaves.add(t);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer === undefined && !this.paused && !this.closed) {
      this.flushTimer = this.clock.setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, this.timeouts.flush);
    }
  }

  /** Send the receipts due (cumulative, per user-channel topic) and save the positions due. */
  private flush(): void {
    this.clear('flushTimer');
    const conn = this.conn;
    for (const t of this.topics.values()) {
      if (conn?.hello && t.recvDue > t.recvSent) {
        t.recvSent = t.recvDue;
        this.send(conn, { op: 'recv', topic: t.name, offset: t.recvDue });
      }
    }
    for (const t of this.pendingSaves) this.saveNow(t);
    this.pendingSaves.clear();
  }

  private saveNow(t: Topic): void {
    if (!t.saveDue || !t.order.position) return;
    t.saveDue = false;
    try {
      void Promise.resolve(this.storage.setItem(this.key(t.name), JSON.stringify(t.order.position))).catch((err: unknown) =>
        this.emit('error', new OneboxError('storage_failed', `saving the position of ${t.name}: ${String(err)}`, t.name)),
      );
    } catch (err) {
      this.emit('error', new OneboxError('storage_failed', `saving the position of ${t.name}: ${String(err)}`, t.name));
    }
  }

  // --- requests -----------------------------------------------------------------------------

  private request(body: Frame, timeoutMs: number, resend: boolean): Promise<Frame> {
    if (this.closed) return Promise.reject(new OneboxError('closed', 'the client is closed'));
    return new Promise<Frame>((resolve, reject) => {
      const id = `r${++this.seq}`;
      const r: Request = { id, frame: { ...body, id }, resolve, reject, deadline: this.clock.now() + timeoutMs, resend };
      this.requests.set(id, r);
      this.armDeadline(r);
      if (this.conn?.ready) this.sendRequest(r);
      else if (!resend) this.settle(id)?.reject(new OneboxError('disconnected', 'not connected'));
      else if (this.paused) this.clearDeadline(r);
    });
  }

  private armDeadline(r: Request): void {
    if (r.timer !== undefined) this.clock.clearTimeout(r.timer);
    r.timer = this.clock.setTimeout(() => this.settle(r.id)?.reject(new OneboxError('timeout', `no answer to ${String(r.frame.op)} in time`, r.frame.topic)), Math.max(0, r.deadline - this.clock.now()));
  }

  private clearDeadline(r: Request): void {
    if (r.timer !== undefined) this.clock.clearTimeout(r.timer);
    if (r.retryTimer !== undefined) this.clock.clearTimeout(r.retryTimer);
    r.timer = r.retryTimer = undefined;
  }

  private sendRequest(r: Request): void {
    const conn = this.conn;
    if (!conn) return;
    if (r.timer === undefined) {
      // Back from a pause: the deadline kept running in wall time.
      if (this.clock.now() >= r.deadline) return void this.settle(r.id)?.reject(new OneboxError('timeout', `no answer to ${String(r.frame.op)} in time`, r.frame.topic));
      this.armDeadline(r);
    }
    r.sentOn = conn;
    this.send(conn, r.frame);
  }

  private settle(id: string): Request | undefined {
    const r = this.requests.get(id);
    if (!r) return undefined;
    this.requests.delete(id);
    this.clearDeadline(r);
    return r;
  }

  private answer(f: Frame): void {
    if (typeof f.id !== 'string') return;
    const r = this.requests.get(f.id);
    if (!r) return;
    if (f.op === 'ack') return void this.settle(f.id)!.resolve(f);
    if (r.resend && RETRYABLE.has(f.code)) {
      // Sent again on the next connection, or after a short wait on this one.
      r.sentOn = undefined;
      const wait = hintedDelay(1, this.random);
      const conn = this.conn;
      if (r.retryTimer !== undefined) this.clock.clearTimeout(r.retryTimer);
      r.retryTimer = this.clock.setTimeout(() => {
        r.retryTimer = undefined;
        if (this.requests.get(r.id) === r && this.conn === conn && conn?.ready && !r.sentOn) this.sendRequest(r);
      }, wait);
      return;
    }
    this.settle(f.id)!.reject(new OneboxError(String(f.code), String(f.message ?? f.code), r.frame.topic));
  }
}
