/**
 * The WebSocket protocol: JSON text frames with an `op`.
 * Client: `sub {topic}`, `unsub {topic}`, `pub {topic, data}`, `ping`; each may carry an `id`
 * echoed in the answer. Server: `msg {topic, data, from?}`, `ack {id, op, topic}`,
 * `error {code, message, id?}`, `pong {id, ts}`.
 */

import type { WsErrorCode } from '../errors.js';
import { checkJsonBounds } from '../lib/json.js';

export type ClientFrame =
  | { op: 'sub' | 'unsub'; topic: string; id: unknown }
  | { op: 'pub'; topic: string; data: unknown; id: unknown }
  | { op: 'ping'; id: unknown };

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
  switch (f.op) {
    case 'ping':
      return { op: 'ping', id };
    case 'sub':
    case 'unsub':
    case 'pub':
      if (!isValidTopic(f.topic)) return new FrameError('invalid_topic', 'topic must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,99}', id);
      return f.op === 'pub' ? { op: 'pub', topic: f.topic, data: f.data ?? null, id } : { op: f.op, topic: f.topic, id };
    default:
      return new FrameError('unknown_op', 'op must be sub, unsub, pub or ping', id);
  }
}

export const frames = {
  error: (code: WsErrorCode, message: string, id?: unknown) => JSON.stringify({ op: 'error', code, message, id }),
  ack: (op: string, topic: string | undefined, id: unknown) => JSON.stringify({ op: 'ack', id, ack: op, topic }),
  pong: (id: unknown, ts: number) => JSON.stringify({ op: 'pong', id, ts }),
  msg: (topic: string, data: unknown, from?: string) => JSON.stringify({ op: 'msg', topic, data, from }),
};
