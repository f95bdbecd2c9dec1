/**
 * A fake transport for the gateway's unit tests (after centrifuge's hub_test.go): a
 * `SocketOps` that records what the gateway does to each socket instead of writing to one.
 * A test sets the bytes a socket reports as queued to play a slow consumer. Writes after the
 * gateway closed or terminated a socket are counted, so a test can prove there were none.
 */
import type { GatewayOptions, SocketOps } from '../../src/realtime/gateway.js';

export interface FakeSocket {
  readonly id: number;
  /** Every text frame sent, in order, but the first `hello`. */
  readonly sent: string[];
  /** The `hello` the gateway sent on open (kept out of `sent`, as the ws kit's Client does). */
  hello: string | undefined;
  pings: number;
  /** Every close the gateway asked for, in order (one is expected at most). */
  readonly closes: Array<{ code: number; reason: string }>;
  terminated: number;
  /** What `buffered()` answers: bytes queued and not yet written. */
  buffered: number;
  /** Sends and pings that came after a close or a terminate. */
  afterEnd: number;
}

/** Parsed frames the socket was sent. */
export function framesOf(sock: FakeSocket): Array<Record<string, unknown>> {
  return sock.sent.map((text) => JSON.parse(text) as Record<string, unknown>);
}

/** The last frame the socket was sent, parsed. */
export function lastFrame(sock: FakeSocket): Record<string, unknown> | undefined {
  const text = sock.sent.at(-1);
  return text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>);
}

export class FakeSocketOps implements SocketOps {
  readonly sockets: FakeSocket[] = [];

  /** A new socket, as an engine would hand to `gateway.open`. */
  socket(): FakeSocket {
    const sock: FakeSocket = { id: this.sockets.length + 1, sent: [], hello: undefined, pings: 0, closes: [], terminated: 0, buffered: 0, afterEnd: 0 };
    this.sockets.push(sock);
    return sock;
  }

  send(sock: unknown, text: string): void {
    const s = as(sock);
    if (ended(s)) s.afterEnd++;
    if (s.hello === undefined && text.startsWith('{"op":"hello"')) s.hello = text;
    else s.sent.push(text);
  }

  buffered(sock: unknown): number {
    return as(sock).buffered;
  }

  ping(sock: unknown): void {
    const s = as(sock);
    if (ended(s)) s.afterEnd++;
    s.pings++;
  }

  close(sock: unknown, code: number, reason: string): void {
    as(sock).closes.push({ code, reason });
  }

  terminate(sock: unknown): void {
    as(sock).terminated++;
  }
}

const ended = (s: FakeSocket) => s.closes.length > 0 || s.terminated > 0;

function as(sock: unknown): FakeSocket {
  // The gateway must only ever hand back a socket it was given by `open`.
  if (typeof sock !== 'object' || sock === null || !('sent' in sock)) throw new Error(`not a fake socket: ${String(sock)}`);
  return sock as FakeSocket;
}

/**
 * Gateway settings for tests over the fake transport: a 1000 ms ping interval (the heartbeat
 * then ticks every 25 ms), small bounds a test can reach; override what a test is about.
 */
export function gatewayOptions(overrides: Partial<GatewayOptions> = {}): GatewayOptions {
  return {
    maxConnections: 100,
    maxHandshakes: 100,
    maxConnectionsPerIp: undefined,
    trustProxy: { kind: 'off' },
    pingIntervalMs: 1000,
    idleTimeoutMs: 2500,
    maxBufferedBytes: 4096,
    maxSubscriptions: 3,
    maxJsonDepth: 8,
    wsPublishPerS: 5,
    ...overrides,
  };
}
