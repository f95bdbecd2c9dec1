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
import type { Frame, Link } from './link.js';
import { RETRYABLE, Requests } from './requests.js';
import { memoryStorage } from './storage.js';
import type { Subscription } from './subscription.js';
import { Topics } from './topics.js';
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
  SubscribeOptions,
  TokenReason,
  WebSocketCtor,
  WebSocketLike,
} from './types.js';

/** The subprotocol the client offers: the server then reports refusals as close codes. */
export const SUBPROTOCOL = 'onebox.v1';
/** Close codes the client acts on (docs/protocol.md, "Close codes"). */
export const CLOSE = { NORMAL: 1000, RESTART: 1012, TRY_AGAIN_LATER: 1013, TOKEN_EXPIRED: 4001, UNAUTHORIZED: 4003 } as const;

interface Conn extends Link {
  ws: WebSocketLike;
  /** Wall time of the last frame received. */
  lastRx: number;
  pingSent: boolean;
  openedAt: number;
  watchdog?: unknown;
  connectTimer?: unknown;
  refreshTimer?: unknown;
  /** When the connection's token expires, on this clock (ms). */
  expAt?: number;
}

const defaultClock: Clock = {
  setTimeout: (fn, ms) => (globalThis as any).setTimeout(fn, ms),
  clearTimeout: (h) => (globalThis as any).clearTimeout(h),
  now: () => Date.now(),
};

export class Onebox extends Emitter<OneboxEvents> {
  private readonly WS: WebSocketCtor;
  private readonly backoff: ResolvedBackoff;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly timeouts: { publish: number; request: number; connect: number };
  private readonly clientId: string;
  private readonly requests: Requests;
  private readonly topics: Topics;

  private _state: ConnectionState = 'disconnected';
  private conn: Conn | undefined;
  private attemptSeq = 0;
  private attempts = 0;
  private disconnectedSince: number | undefined;
  private reconnectTimer: unknown;
  private paused = false;
  private online = true;
  private closed = false;
  private unauthorized = false;
  /** A 4001 made the client refresh its token; a second before a `hello` means log in again. */
  private refreshedAfterExpiry = false;
  private pingIntervalMs: number;
  /** Server clock minus this clock, from the last `hello` (ms). */
  private skewMs = 0;

  constructor(private readonly opts: OneboxOptions) {
    super();
    const WS = opts.WebSocket ?? ((globalThis as any).WebSocket as WebSocketCtor | undefined);
    if (!WS) throw new TypeError('onebox-client: no global WebSocket; pass options.WebSocket (e.g. the `ws` package on Node 20)');
    this.WS = WS;
    this.backoff = { ...BACKOFF_DEFAULTS, ...opts.backoff };
    this.clock = opts.clock ?? defaultClock;
    this.random = opts.random ?? Math.random;
    this.timeouts = { publish: opts.publishTimeoutMs ?? 15_000, request: opts.requestTimeoutMs ?? 10_000, connect: opts.connectTimeoutMs ?? 10_000 };
    this.pingIntervalMs = opts.pingIntervalMs ?? 30_000;
    this.clientId = Math.floor(this.random() * 36 ** 8).toString(36).padStart(8, '0');
    const link = () => (this.conn?.open ? this.conn : undefined);
    this.requests = new Requests({ clock: this.clock, random: this.random, link, paused: () => this.paused });
    this.topics = new Topics({
      clock: this.clock,
      storage: opts.storage ?? memoryStorage(),
      prefix: opts.storagePrefix ?? 'onebox',
      timeouts: { flush: opts.flushMs ?? 100, gapFill: opts.gapFillMs ?? 500, request: this.timeouts.request },
      requests: this.requests,
      link,
      onReady: (l) => this.requests.sendPending(l),
      emitError: (err) => this.emit('error', err),
      idle: () => this.paused || this.closed,
    });
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
    return this.topics.subscribe(topic, onMessage, options);
  }

  /**
   * Publish, retried on every reconnect with the same idempotency key until the server
   * acknowledges or `timeoutMs` passes. Resolves with the message's offset (namespaces with
   * history); rejects with a OneboxError (`timeout`, `publish_forbidden`, …).
   */
  publish(topic: string, data: unknown, options: PublishOptions = {}): Promise<PublishResult> {
    if (this.closed) return Promise.reject(new OneboxError('closed', 'the client is closed'));
    const key = options.key ?? `${this.clientId}-${Date.now().toString(36)}-${this.requests.nextSeq().toString(36)}`;
    return this.requests.send({ op: 'pub', topic, data, key }, options.timeoutMs ?? this.timeouts.publish, true).then((ack) => ({
      ...(typeof ack.offset === 'number' ? { offset: ack.offset } : {}),
      ...(typeof ack.epoch === 'string' ? { epoch: ack.epoch } : {}),
    }));
  }

  /** Who is in a subscribed topic now (the `presence` op); keep the list with the subscription's `presence` events. */
  async presence(topic: string): Promise<PresenceResult> {
    if (this.closed) throw new OneboxError('closed', 'the client is closed');
    const ack = await this.requests.send({ op: 'presence', topic }, this.timeouts.request, true);
    return { count: ack.count as number, members: ack.members as PresenceResult['members'], more: ack.more === true };
  }

  /** The app goes to the background: close the connection cleanly (1000) and stop every timer. */
  pause(): void {
    if (this.closed || this.paused) return;
    this.paused = true;
    this.topics.flush();
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
    this.topics.flush();
    this.closed = true;
    this.stopAll(CLOSE.NORMAL, 'closed');
    this.requests.rejectAll(new OneboxError('closed', 'the client was closed'));
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
    const conn: Conn = {
      ws,
      send: (frame) => this.send(conn, frame),
      open: false,
      hello: false,
      ready: false,
      subsInFlight: 0,
      lastRx: this.clock.now(),
      pingSent: false,
      openedAt: 0,
    };
    this.conn = conn;
    conn.connectTimer = this.clock.setTimeout(() => this.drop(conn, { reason: 'connect_timeout' }), this.timeouts.connect);
    ws.onopen = () => {
      if (this.conn !== conn) return;
      conn.open = true;
      conn.openedAt = this.clock.now();
      conn.lastRx = conn.openedAt;
      this.armWatchdog(conn);
      this.topics.onOpen(conn);
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
    conn.open = false;
    if (this.conn === conn) this.conn = undefined;
    this.topics.linkLost();
    this.requests.linkLost(conn);
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
    this.topics.stopFlushTimer();
    this.requests.stopTimers();
  }

  private clear(name: 'reconnectTimer'): void {
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
    switch (f.op) {
      case 'hello':
        return this.onHello(conn, f);
      case 'msg':
        return this.topics.onMsg(f);
      case 'ack':
        if (f.ack === 'sub') return this.topics.onSubAck(conn, f);
        return void this.requests.answer(f);
      case 'error':
        if (this.topics.isSubId(f.id)) return this.topics.onSubError(conn, f);
        if (f.id === undefined && typeof f.topic === 'string') return this.topics.onRevoked(f);
        return void this.requests.answer(f);
      case 'presence':
        return this.topics.onPresence(f);
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
      const ack = await this.requests.send({ op: 'auth', token }, this.timeouts.request, false);
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
}
