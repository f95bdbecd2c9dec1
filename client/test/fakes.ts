/**
 * The client's unit tests run over a fake clock (every timer the client sets is visible and
 * fired by `advance`) and a fake WebSocket with the browser's event-handler semantics: the
 * test plays the server, frame by frame.
 */
import { setImmediate as tick } from 'node:timers/promises';
import { Onebox, type Clock, type ConnectionState, type OneboxOptions, type StateInfo, type WebSocketLike } from '../src/index.js';

export class FakeClock implements Clock {
  t = 1_800_000_000_000;
  private seq = 0;
  readonly timers = new Map<number, { at: number; fn: () => void; ms: number }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn, ms });
    return id;
  }

  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }

  now(): number {
    return this.t;
  }

  /** Move time forward by ms, firing each due timer at its moment (and letting promises settle). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await settle();
    }
    this.t = end;
    await settle();
  }

  /** The delays of the timers set and not yet fired or cleared. */
  pending(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t);
  }
}

/** Let promise chains (getToken, storage) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await tick();
}

type Frame = Record<string, any>;

/** A fake browser WebSocket; `FakeSocket.all` holds every one created, in order. */
export class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  readyState = 0;
  protocol = '';
  readonly sent: Frame[] = [];
  /** Answer each `ping` op with a `pong`, as the server does. */
  autoPong = true;
  closedWith: { code?: number; reason?: string } | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeSocket.all.push(this);
  }

  static reset(): void {
    FakeSocket.all = [];
  }

  static last(): FakeSocket {
    const s = FakeSocket.all[FakeSocket.all.length - 1];
    if (!s) throw new Error('no socket was created');
    return s;
  }

  /** The server accepts (selecting the subprotocol, as a v1 server does). */
  open(protocol = 'onebox.v1'): void {
    this.readyState = 1;
    this.protocol = protocol;
    this.onopen?.({});
  }

  /** Open and send the hello frame. */
  accept(hello: Partial<{ pingIntervalMs: number; ts: number; exp: number }> = {}): void {
    this.open();
    this.receive({ op: 'hello', v: 1, pingIntervalMs: 30_000, ts: Date.now(), ...hello });
  }

  receive(frame: Frame): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** The server closes (or the network dies and the browser reports 1006). */
  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
    const f = JSON.parse(data) as Frame;
    this.sent.push(f);
    if (f.op === 'ping' && this.autoPong) this.receive({ op: 'pong', id: f.id, ts: Date.now() });
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
    this.readyState = 2;
  }

  /** Frames sent with this op. */
  ops(op: string): Frame[] {
    return this.sent.filter((f) => f.op === op);
  }

  /** Answer every `sub` sent so far and not yet answered with an ack carrying these fields. */
  ackSubs(fields: (f: Frame) => Frame = () => ({})): void {
    for (const f of this.ops('sub')) {
      if (f.answered) continue;
      f.answered = true;
      this.receive({ op: 'ack', id: f.id, ack: 'sub', topic: f.topic, ...fields(f) });
    }
  }
}

export interface Harness {
  ob: Onebox;
  clock: FakeClock;
  states: Array<[ConnectionState, StateInfo]>;
  tokens: string[];
  /** The latest state. */
  state(): ConnectionState;
}

/** A client over the fakes; `random` defaults to 0.5. */
export async function harness(opts: Partial<OneboxOptions> = {}): Promise<Harness> {
  FakeSocket.reset();
  const clock = new FakeClock();
  const tokens: string[] = [];
  let n = 0;
  const ob = new Onebox({
    url: 'wss://onebox.test/v1/ws',
    getToken: ({ reason }) => {
      const t = `token-${++n}-${reason}`;
      tokens.push(t);
      return Promise.resolve(t);
    },
    WebSocket: FakeSocket,
    clock,
    random: () => 0.5,
    ...opts,
  });
  const states: Array<[ConnectionState, StateInfo]> = [];
  ob.on('state', (s, info) => states.push([s, info]));
  await settle();
  return { ob, clock, states, tokens, state: () => states[states.length - 1]?.[0] ?? ob.state };
}

export const msg = (topic: string, offset: number, data: unknown = offset) => ({ op: 'msg', topic, offset, ts: 1, data });
