/**
 * The WebSocket protocol: JSON text frames with an `op` (docs/protocol.md is the reference).
 * Client: `sub {topic, since?, token?}`, `unsub {topic}`, `pub {topic, data, key?}`,
 * `history {topic, since, limit?, token?}`, `recv {topic, offset}`, `presence {topic}`, `ping`,
 * `auth {token}`; each but `recv` may carry an `id` echoed in the answer. Server: `hello {v,
 * pingIntervalMs, ts, exp}` first, then `msg {topic, offset?, ts, data, from?}`, `ack {id, ack,
 * topic, …}`, `error {code, message, id?}`, `pong {id, ts}`, `presence {topic, join | leave | count}`.
 */

import type { WsErrorCode } from '../errors.js';
import { checkJsonBounds } from '../lib/json.js';

/**
 * The subprotocol a client offers (Sec-WebSocket-Protocol) to say it reads refusals as close
 * codes: a browser cannot see the HTTP status of a refused upgrade.
 */
export const SUBPROTOCOL = 'onebox.v1';

/** Whether a Sec-WebSocket-Protocol header offers SUBPROTOCOL. */
export function offersSubprotocol(header: string | null | undefined): boolean {
  if (!header) return false;
  for (const p of header.split(',')) if (p.trim() === SUBPROTOCOL) return true;
  return false;
}

/** A position in a topic's log: the last offset seen, in the store's epoch. */
export interface Since {
  offset: number;
  epoch: string;
}

export type ClientFrame =
  | { op: 'sub'; topic: string; id: unknown; since: Since | undefined; token: string | undefined }
  | { op: 'unsub'; topic: string; id: unknown }
  | { op: 'pub'; topic: string; data: unknown; id: unknown; key: string | undefined }
  | { op: 'history'; topic: string; id: unknown; since: Since; limit: number; token: string | undefined }
  | { op: 'recv'; topic: string; offset: number }
  | { op: 'presence'; topic: string; id: unknown }
  | { op: 'ping'; id: unknown }
  | { op: 'auth'; id: unknown; token: string };

/** Most messages one `history` answer carries. */
export const HISTORY_MAX = 100;
const KEY = /^[\x21-\x7e]{1,128}$/;
/** Longest access or subscription token taken (a JWT of a few claims is about 250 characters). */
export const TOKEN_MAX = 4096;

const isOffset = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function parseSince(v: unknown, id: unknown): Since | FrameError {
  const s = v as Record<string, unknown> | null;
  if (typeof s !== 'object' || s === null || !isOffset(s.offset) || typeof s.epoch !== 'string' || s.epoch.length > 64) {
    return new FrameError('bad_frame', 'since must be {offset: integer >= 0, epoch: string}', id);
  }
  return { offset: s.offset, epoch: s.epoch };
}

export class FrameError {
  constructor(
    readonly code: WsErrorCode,
    readonly message: string,
    readonly id: unknown = undefined,
  ) {}
}

const TOPIC = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;

/** True when the topic name has the allowed charset and length (1-100). */
export function isValidTopic(topic: unknown): topic is string {
  return typeof topic === 'string' && TOPIC.test(topic);
}

/** Parse one text frame; returns a FrameError for anything malformed or nested past maxDepth. */
export function parseFrame(text: string, maxDepth: number): ClientFrame | FrameError {
  // NUL is fine here: frames are relayed as JSON text, never stored as text columns.
  if (checkJsonBounds(text, maxDepth, false) === 'too_deep') {
    return new FrameError('json_too_deep', `frame nested deeper than ${maxDepth} levels`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return new FrameError('bad_json', 'frame is not valid JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return new FrameError('bad_frame', 'frame must be a JSON object');
  }
  const f = v as Record<string, unknown>;
  const id = f.id;
  if (id !== undefined && typeof id !== 'string' && typeof id !== 'number') {
    return new FrameError('bad_frame', 'id must be a string or a number');
  }
  if (f.op === 'ping') return { op: 'ping', id };
  if (f.op === 'auth') {
    if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > TOKEN_MAX) {
      return new FrameError('bad_frame', `token must be a non-empty string of at most ${TOKEN_MAX} characters`, id);
    }
    return { op: 'auth', id, token: f.token };
  }
  if (f.op !== 'sub' && f.op !== 'unsub' && f.op !== 'pub' && f.op !== 'history' && f.op !== 'recv' && f.op !== 'presence') {
    return new FrameError('unknown_op', 'op must be sub, unsub, pub, history, recv, presence, ping or auth', id);
  }
  const topic = f.topic;
  let token: string | undefined;
  if ((f.op === 'sub' || f.op === 'history') && f.token !== undefined) {
    if (typeof f.token !== 'string' || f.token.length === 0 || f.token.length > TOKEN_MAX) {
      return new FrameError('bad_frame', `token must be a string of 1-${TOKEN_MAX} characters`, id);
    }
    token = f.token;
  }
  if (!isValidTopic(topic)) return new FrameError('invalid_topic', 'topic must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,99}', id);
  switch (f.op) {
    case 'unsub':
      return { op: 'unsub', topic, id };
    case 'presence':
      return { op: 'presence', topic, id };
    case 'sub': {
      if (f.since === undefined) return { op: 'sub', topic, id, since: undefined, token };
      const since = parseSince(f.since, id);
      return since instanceof FrameError ? since : { op: 'sub', topic, id, since, token };
    }
    case 'pub': {
      if (f.key !== undefined && (typeof f.key !== 'string' || !KEY.test(f.key))) {
        return new FrameError('bad_frame', 'key must be 1-128 printable ASCII characters', id);
      }
      return { op: 'pub', topic, data: f.data ?? null, id, key: f.key };
    }
    case 'history': {
      const since = parseSince(f.since, id);
      if (since instanceof FrameError) return since;
      const limit = f.limit === undefined ? HISTORY_MAX : f.limit;
      if (!isOffset(limit) || limit < 1) return new FrameError('bad_frame', 'limit must be a positive integer', id);
      return { op: 'history', topic, id, since, limit: Math.min(limit, HISTORY_MAX), token };
    }
    case 'recv':
      if (!isOffset(f.offset)) return new FrameError('bad_frame', 'offset must be an integer >= 0', id);
      return { op: 'recv', topic, offset: f.offset };
  }
}

export const frames = {
  error: (code: WsErrorCode, message: string, id?: unknown, topic?: string) => JSON.stringify({ op: 'error', code, message, id, topic }),
  ack: (op: string, topic: string | undefined, id: unknown, extra?: Record<string, unknown>) =>
    JSON.stringify({ op: 'ack', id, ack: op, topic, ...extra }),
  pong: (id: unknown, ts: number) => JSON.stringify({ op: 'pong', id, ts }),
  /** The first frame of every connection. @param exp the access token's expiry, epoch seconds. */
  hello: (pingIntervalMs: number, ts: number, exp: number) => `{"op":"hello","v":1,"pingIntervalMs":${pingIntervalMs},"ts":${ts},"exp":${exp}}`,
  /**
   * A message whose `data` is already JSON text (serialized once, whatever the receivers).
   * @param offset its place in the topic's log; null where the namespace keeps no history.
   * @param ts server time of the publish, ms since the epoch.
   */
  msgRaw: (topic: string, dataJson: string, from: string | null | undefined, offset: number | null, ts: number) =>
    `{"op":"msg","topic":${JSON.stringify(topic)}${offset === null ? '' : `,"offset":${offset}`},${messageFields(dataJson, from, ts)}}`,
  /** One entry of a `history` answer's `messages`: a message without op and topic. */
  entryRaw: (dataJson: string, from: string | null | undefined, offset: number, ts: number) =>
    `{"offset":${offset},${messageFields(dataJson, from, ts)}}`,
};

/** The fields a message carries wherever it is sent: `ts`, `data` (JSON text), and `from` if any. */
function messageFields(dataJson: string, from: string | null | undefined, ts: number): string {
  return `"ts":${ts},"data":${dataJson}${from ? `,"from":${JSON.stringify(from)}` : ''}`;
}
