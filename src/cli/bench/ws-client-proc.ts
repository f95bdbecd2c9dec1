/**
 * One benchmark client process: lean raw-socket WebSocket clients, because a `ws` client
 * object per connection would cost more than the server we measure and cap how many
 * connections one process can hold. Each connection does a correct RFC 6455 handshake
 * (checks Sec-WebSocket-Accept), sends masked frames, answers pings with pongs, counts the
 * pings it receives, subscribes to its topics, and records fan-out latency. Connection state
 * is a small object; socket handlers are shared functions. On `publish` (the delivery
 * scenario) every open connection keeps a window of `pub` frames outstanding, sending the
 * next one as each is acknowledged, and records the ack latency in an HDR histogram. On
 * `appPing` (the heartbeat scenario) every open connection sends `{"op":"ping"}` once per
 * interval when it received no text frame in that interval, as the SDK does to detect a dead
 * socket where protocol pings are invisible (browsers, React Native); one sweep timer per
 * process deals the connections into slices of the interval, as the server's heartbeat does.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import * as hdr from 'hdr-histogram-js';
import { BACKOFF_DEFAULTS, backoffDelay, hintedDelay, parseCloseReason, restartDelay, suspendedDelay } from '../../../client/src/backoff.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HANDSHAKE_TIMEOUT_MS = 10_000;
const STATE = Symbol('bench.conn');

interface Start {
  cmd: 'start';
  host: string;
  port: number;
  tokens: string[];
  localAddress: string;
  /** Topics each connection subscribes to once open (none: a publisher only). */
  topic: string | string[];
  /** Connections opened per second by this process. */
  rate: number;
  reconnect: boolean;
  /**
   * How a closed connection comes back: `sdk`, the client SDK's delays and rules (its
   * backoff functions, the subprotocol so that refusals arrive as close codes with retry
   * hints); `raw`, the bench's own jittered exponential backoff from before the SDK.
   * @default 'raw'
   */
  backoff?: 'sdk' | 'raw';
  /** The upgrade path. @default '/v1/ws' */
  path?: string;
  /**
   * Speak Socket.IO (Engine.IO 4) inside the WebSocket, for the Socket.IO peer of `--peers`:
   * connect to the default namespace (`40`), subscribe as the event `sub`, answer Engine.IO
   * pings (`2`) with pongs (`3`), read `msg` events.
   */
  engineIo?: boolean;
}

class Conn {
  buf: Buffer | null = null;
  open = false;
  key = '';
  attempts = 0;
  /** When the connection last opened, and since when it has been down (Date.now(), 0: not). */
  openedAt = 0;
  downSince = 0;
  /** The server's close frame, if one came before the socket closed. */
  closeCode = 0;
  closeReason = '';
  /** This attempt's failure was counted by kind (an error, a timeout, a refusal). */
  failed = false;
  pings = 0;
  /** When the last text frame arrived (Date.now()): an app ping is due only after a silent interval. */
  lastText = 0;
  sock: Socket | null = null;
  /** Outstanding pubs: frame id -> send time (performance.now()). */
  inflight: Map<number, number> | null = null;
  constructor(readonly token: string) {}
}

/** The publishing state of this process (the delivery scenario). */
interface Publish {
  cmd: 'publish';
  topics: string[];
  /** Pubs outstanding per connection. */
  window: number;
  /** Filler in each pub's data, to give the frame a realistic size. */
  pad: string;
}
const latencies = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
const pub = {
  cfg: null as Publish | null,
  sending: false,
  nextId: 1,
  nextTopic: 0,
  acked: 0,
  /** Acks over the whole run (never reset). */
  ackedTotal: 0,
  errors: {} as Record<string, number>,
  /** Ack latency in microseconds since the last mark. */
  hist: latencies(),
};

const stats = { open: 0, opened: 0, failed: 0, dropped: 0, pings: 0, reconnects: 0, appPings: 0, pongs: 0, errors: {} as Record<string, number> };
const fanout = new Map<string, number[]>();
let cfg: Start;
let stopping = false;

function mask(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const head = len < 126 ? 6 : 8;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  }
  const m = randomBytes(4);
  m.copy(out, head - 4);
  for (let i = 0; i < len; i++) out[head + i] = payload[i]! ^ m[i & 3]!;
  return out;
}

function fail(kind: string, c?: Conn): void {
  stats.errors[kind] = (stats.errors[kind] ?? 0) + 1;
  if (c) c.failed = true;
}

const connOf = (sock: Socket) => (sock as Socket & { [STATE]: Conn })[STATE];

function open(c: Conn): void {
  c.key = randomBytes(16).toString('base64');
  c.buf = null;
  c.failed = false;
  const sock = connect({ host: cfg.host, port: cfg.port, localAddress: cfg.localAddress });
  c.sock = sock;
  (sock as Socket & { [STATE]: Conn })[STATE] = c;
  sock.setNoDelay(true);
  // A handshake that never answers is given up and retried, as a phone's client library
  // would; once open, the server's pings keep the connection honest.
  sock.setTimeout(HANDSHAKE_TIMEOUT_MS);
  sock.on('timeout', onTimeout);
  sock.on('connect', onConnect);
  sock.on('data', onData);
  sock.on('error', onError);
  sock.on('close', onClose);
}

function onConnect(this: Socket): void {
  const c = (this as Socket & { [STATE]: Conn })[STATE];
  this.write(
    `GET ${cfg.path ?? '/v1/ws'} HTTP/1.1\r\nHost: ${cfg.host}:${cfg.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${c.key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${c.token}\r\n` +
      (cfg.backoff === 'sdk' ? 'Sec-WebSocket-Protocol: onebox.v1\r\n\r\n' : '\r\n'),
  );
}

function onTimeout(this: Socket): void {
  fail('handshake_timeout', connOf(this));
  this.destroy();
}

function onError(this: Socket, err: NodeJS.ErrnoException): void {
  fail(err.code ?? 'socket_error', connOf(this));
}

function onClose(this: Socket): void {
  const c = (this as Socket & { [STATE]: Conn })[STATE];
  if (c.open) {
    c.open = false;
    stats.open--;
    if (!stopping) stats.dropped++;
  } else if (!stopping) {
    stats.failed++;
    // The server closed the socket before any answer to the upgrade.
    if (!c.failed) fail('closed_before_answer');
  }
  if (cfg.reconnect && !stopping) {
    stats.reconnects++;
    setTimeout(() => open(c), cfg.backoff === 'sdk' ? sdkDelay(c) : rawDelay(c));
  }
}

/** The bench's own backoff: full jitter, so a fleet of clients does not come back in lockstep. */
function rawDelay(c: Conn): number {
  c.attempts++;
  return Math.random() * Math.min(10_000, 200 * 2 ** Math.min(c.attempts, 6));
}

/** The SDK's next delay (client/src/onebox.ts onClose and scheduleReconnect, with its defaults). */
function sdkDelay(c: Conn): number {
  const b = BACKOFF_DEFAULTS;
  const now = Date.now();
  const code = c.closeCode;
  const { retryS } = parseCloseReason(c.closeReason);
  c.closeCode = 0;
  c.closeReason = '';
  // A connection that held for a while starts the backoff over; one that flaps keeps climbing.
  if (c.openedAt > 0 && now - c.openedAt >= b.baseMs * 5) c.attempts = 0;
  c.openedAt = 0;
  c.downSince ||= now;
  if (code === 1012) return restartDelay(b, Math.random);
  if (retryS !== undefined) return hintedDelay(retryS, Math.random);
  const suspended = now - c.downSince >= b.suspendAfterMs;
  const delay = suspended ? suspendedDelay(b, Math.random) : backoffDelay(b, c.attempts, Math.random);
  c.attempts++;
  return delay;
}

function onData(this: Socket, chunk: Buffer): void {
  const c = (this as Socket & { [STATE]: Conn })[STATE];
  let buf = c.buf ? Buffer.concat([c.buf, chunk]) : chunk;
  if (!c.open) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      c.buf = buf;
      return;
    }
    const head = buf.subarray(0, end).toString('latin1');
    const status = /^HTTP\/1\.1 (\d{3})/.exec(head)?.[1];
    const accept = /\r\nsec-websocket-accept: *([^\r]+)/i.exec(head)?.[1];
    const expected = createHash('sha1').update(c.key + GUID).digest('base64');
    if (status !== '101' || accept !== expected) {
      fail(status === '101' ? 'bad_accept' : `http_${status ?? 'garbage'}`, c);
      this.destroy();
      return;
    }
    c.open = true;
    if (cfg.backoff !== 'sdk') c.attempts = 0;
    c.openedAt = Date.now();
    c.downSince = 0;
    this.setTimeout(0);
    stats.open++;
    stats.opened++;
    if (cfg.engineIo) this.write(mask(1, Buffer.from('40')));
    else for (const topic of topicsOf(cfg)) this.write(mask(1, Buffer.from(JSON.stringify({ op: 'sub', topic }))));
    if (pub.sending) fill(c);
    buf = buf.subarray(end + 4);
  }
  while (buf.length >= 2) {
    const opcode = buf[0]! & 0x0f;
    let len = buf[1]! & 0x7f;
    let off = 2;
    if (len === 126) {
      if (buf.length < 4) break;
      len = buf.readUInt16BE(2);
      off = 4;
    } else if (len === 127) {
      if (buf.length < 10) break;
      len = Number(buf.readBigUInt64BE(2));
      off = 10;
    }
    if (buf.length < off + len) break;
    const payload = buf.subarray(off, off + len);
    buf = buf.subarray(off + len);
    if (opcode === 9) {
      stats.pings++;
      c.pings++;
      this.write(mask(10, Buffer.from(payload)));
    } else if (opcode === 1) {
      onText(c, payload);
    } else if (opcode === 8) {
      if (payload.length >= 2) {
        c.closeCode = payload.readUInt16BE(0);
        c.closeReason = payload.subarray(2).toString('utf8');
      }
      this.end(mask(8, Buffer.from(payload.subarray(0, 2))));
    }
  }
  c.buf = buf.length > 0 ? Buffer.from(buf) : null;
}

/** `{"op":"ack"` and `{"op":"error"`: the frames that answer a pub. */
const ACK = Buffer.from('{"op":"ack"');
const ERROR = Buffer.from('{"op":"error"');

const topicsOf = (s: Start) => (typeof s.topic === 'string' ? [s.topic] : s.topic);

/** Engine.IO's packets: `2` ping, `40…` connected to the namespace, `42[…]` an event. */
function onEngineIo(c: Conn, payload: Buffer): void {
  if (payload.length === 1 && payload[0] === 0x32) {
    stats.pings++;
    c.pings++;
    c.sock?.write(mask(1, Buffer.from('3')));
  } else if (payload[0] === 0x34 && payload[1] === 0x30) {
    for (const topic of topicsOf(cfg)) c.sock?.write(mask(1, Buffer.from(`42${JSON.stringify(['sub', topic])}`)));
  } else if (payload[0] === 0x34 && payload[1] === 0x32 && payload.indexOf('"fanout"') >= 0) {
    const [, f] = JSON.parse(payload.subarray(2).toString()) as [string, { data?: { data?: { fanout?: string; ts?: number } } }];
    record(f.data?.data);
  }
}

function record(d: { fanout?: string; ts?: number } | undefined): void {
  if (!d?.fanout || d.ts === undefined) return;
  let l = fanout.get(d.fanout);
  if (!l) fanout.set(d.fanout, (l = []));
  l.push(Date.now() - d.ts);
}

/** `{"op":"pong"`: the answer to an app-level ping. */
const PONG = Buffer.from('{"op":"pong"');

function onText(c: Conn, payload: Buffer): void {
  if (cfg.engineIo) return onEngineIo(c, payload);
  // A pong does not postpone the next ping: the SDK pings one interval after the last frame
  // (the pong), and the sweep comes round one interval after the ping, a round trip sooner.
  if (payload.subarray(0, PONG.length).equals(PONG)) {
    stats.pongs++;
    return;
  }
  c.lastText = Date.now();
  if (c.inflight && (payload.subarray(0, ACK.length).equals(ACK) || payload.subarray(0, ERROR.length).equals(ERROR))) {
    const f = JSON.parse(payload.toString()) as { op: string; id?: unknown; ack?: string; code?: string };
    const sent = typeof f.id === 'number' ? c.inflight.get(f.id) : undefined;
    if (sent === undefined) return;
    c.inflight.delete(f.id as number);
    if (f.op === 'ack') {
      pub.acked++;
      pub.ackedTotal++;
      pub.hist.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)));
    } else {
      const code = f.code ?? 'error';
      pub.errors[code] = (pub.errors[code] ?? 0) + 1;
    }
    if (pub.sending) fill(c);
    return;
  }
  // Otherwise only fan-out messages matter here; skip parsing the rest.
  if (payload.indexOf('"fanout"') < 0) return;
  // A topic notify carries the caller's data under data.data, a client pub under data.
  const f = JSON.parse(payload.toString()) as { data?: { fanout?: string; ts?: number; data?: { fanout?: string; ts?: number } } };
  record(f.data?.data?.fanout ? f.data.data : f.data);
}

/** Top the connection's outstanding pubs up to the window. */
function fill(c: Conn): void {
  const p = pub.cfg!;
  if (!c.open || !c.sock) return;
  c.inflight ??= new Map();
  while (c.inflight.size < p.window) {
    const id = pub.nextId++;
    const topic = p.topics[pub.nextTopic++ % p.topics.length]!;
    c.inflight.set(id, performance.now());
    c.sock.write(mask(1, Buffer.from(`{"op":"pub","id":${id},"topic":"${topic}","data":{"n":${id},"p":"${p.pad}"}}`)));
  }
}

type Command =
  | Start
  | Publish
  | { cmd: 'pubMark' }
  | { cmd: 'pubStop'; waitMs: number }
  | { cmd: 'fanout'; id: string }
  | { cmd: 'census' }
  | { cmd: 'appPing'; intervalMs: number }
  | { cmd: 'stats' }
  | { cmd: 'stop' };
let all: Conn[] = [];

/** App-level pings: the sweep timer while on, and its slices (connection i is in slice i % slices). */
const appPing = { timer: null as ReturnType<typeof setInterval> | null, slices: 1, cursor: 0, intervalMs: 0, nextId: 1 };

function setAppPing(intervalMs: number): void {
  if (appPing.timer) clearInterval(appPing.timer);
  appPing.timer = null;
  if (intervalMs <= 0) return;
  appPing.intervalMs = intervalMs;
  appPing.slices = Math.min(120, Math.max(1, Math.floor(intervalMs / 25)));
  appPing.cursor = 0;
  appPing.timer = setInterval(sweepAppPings, intervalMs / appPing.slices);
}

function sweepAppPings(): void {
  const slice = appPing.cursor;
  appPing.cursor = (appPing.cursor + 1) % appPing.slices;
  // A connection that heard from the server within the interval knows it is alive.
  const quietSince = Date.now() - appPing.intervalMs;
  for (let i = slice; i < all.length; i += appPing.slices) {
    const c = all[i]!;
    if (!c.open || !c.sock || c.lastText > quietSince) continue;
    c.sock.write(mask(1, Buffer.from(`{"op":"ping","id":${appPing.nextId++}}`)));
    stats.appPings++;
  }
}

process.on('message', (m: Command) => {
  if (m.cmd === 'start') {
    cfg = m;
    const conns = (all = m.tokens.map((t) => new Conn(t)));
    let i = 0;
    const perTick = Math.max(1, Math.round(m.rate / 100));
    const timer = setInterval(() => {
      for (let k = 0; k < perTick && i < conns.length; k++) open(conns[i++]!);
      if (i >= conns.length) clearInterval(timer);
    }, 10);
  } else if (m.cmd === 'publish') {
    pub.cfg = m;
    pub.sending = true;
    for (const c of all) fill(c);
  } else if (m.cmd === 'pubMark') {
    // The measured window starts: counts and latencies from here on.
    pub.acked = 0;
    pub.errors = {};
    pub.hist.reset();
    process.send!({ type: 'pubMark' });
  } else if (m.cmd === 'pubStop') {
    // Stop sending; report once the outstanding pubs are answered (or the wait ends).
    const snapshot = { acked: pub.acked, errors: { ...pub.errors } };
    pub.sending = false;
    const began = Date.now();
    const outstanding = () => all.reduce((a, c) => a + (c.open ? (c.inflight?.size ?? 0) : 0), 0);
    const done = setInterval(() => {
      if (outstanding() > 0 && Date.now() - began < m.waitMs) return;
      clearInterval(done);
      process.send!({
        type: 'pubReport',
        ackedAtStop: snapshot.acked,
        errorsAtStop: snapshot.errors,
        acked: pub.acked,
        ackedTotal: pub.ackedTotal,
        errors: pub.errors,
        unanswered: outstanding(),
        histogram: hdr.encodeIntoCompressedBase64(pub.hist),
      });
    }, 50);
  } else if (m.cmd === 'fanout') {
    process.send!({ type: 'fanout', id: m.id, latencies: fanout.get(m.id) ?? [] });
    fanout.delete(m.id);
  } else if (m.cmd === 'appPing') {
    setAppPing(m.intervalMs);
    process.send!({ type: 'appPing' });
  } else if (m.cmd === 'stats') {
    process.send!({ type: 'statsNow', ...stats });
  } else if (m.cmd === 'census') {
    // Open connections that never saw a ping, and the fewest any open one saw.
    const open = all.filter((c) => c.open);
    process.send!({ type: 'census', open: open.length, noPing: open.filter((c) => c.pings === 0).length, minPings: Math.min(...open.map((c) => c.pings)) });
  } else {
    stopping = true;
    process.exit(0);
  }
});

// With a callback a send to a parent that just went away is an error passed here, not an uncaught 'error' event.
setInterval(() => process.connected && process.send!({ type: 'stats', ...stats, pubAcked: pub.acked }, undefined, undefined, ignore), 1000).unref();
function ignore(): void {}
// The bench is gone (it crashed or was killed): its clients go too.
process.on('disconnect', () => process.exit(0));
