/**
 * The client's public types. The package has no runtime dependency and no DOM or Node types:
 * the WebSocket, the timers and the storage are described here by the little the client uses
 * of them, so the browser's, React Native's and `ws`'s objects all fit.
 */

/** The part of a WebSocket the client uses (browsers, React Native, `ws` all have it). */
export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server selected ('' when none). */
  readonly protocol: string;
  // The events are typed loosely so that the DOM's, React Native's and `ws`'s sockets all
  // fit without a cast; the client reads only `data`, `code` and `reason`.
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: the global `WebSocket`, or `ws`'s on Node. */
export type WebSocketCtor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/**
 * Where positions (`{offset, epoch}` per topic) survive a cold start. `localStorage` and React
 * Native's `AsyncStorage` both have this shape; the default keeps them in memory.
 */
export interface StorageAdapter {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
  removeItem?(key: string): void | Promise<void>;
}

/** Timers and the wall clock, injectable for tests. */
export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/** Reconnect delays (docs: client/README.md, "Reconnecting"). */
export interface BackoffOptions {
  /** First retry within [0, baseMs); each failed attempt doubles the window. @default 1000 ms */
  baseMs?: number;
  /** Largest window while `disconnected`. @default 30000 ms */
  capMs?: number;
  /** Without a connection for this long, the state becomes `suspended`. @default 120000 ms */
  suspendAfterMs?: number;
  /** While `suspended`, one attempt within [0.5, 1] × this. @default 60000 ms */
  suspendedRetryMs?: number;
  /** After a 1012 (server restart), reconnect within [0, restartSpreadMs). @default 2000 ms */
  restartSpreadMs?: number;
}

/** Why the client asks for a token: to connect, before the current one expires, or after a 4001. */
export type TokenReason = 'connect' | 'expiring' | 'expired';

export interface OneboxOptions {
  /** The WebSocket endpoint, e.g. `wss://api.example.com/v1/ws`. */
  url: string;
  /**
   * Returns the access token. Called on each connect (return a cached one while it is valid),
   * before `exp` (reason `expiring`) and once after a 4001 (reason `expired`: refresh it).
   */
  getToken: (ctx: { reason: TokenReason }) => Promise<string> | string;
  /** @default globalThis.WebSocket (browsers, React Native, Node 22+); pass `ws` on Node 20. */
  WebSocket?: WebSocketCtor;
  /** Where positions are kept across cold starts. @default in memory */
  storage?: StorageAdapter;
  /** Prefix of the storage keys; make it per user if several users share a device. @default 'onebox' */
  storagePrefix?: string;
  backoff?: BackoffOptions;
  /** Deadline of a `publish` (retried across reconnects until then). @default 15000 ms */
  publishTimeoutMs?: number;
  /** Deadline of `presence` and other requests. @default 10000 ms */
  requestTimeoutMs?: number;
  /** An attempt that brings no `hello` within this is abandoned. @default 10000 ms */
  connectTimeoutMs?: number;
  /** Receipts (`recv`) and saved positions are batched over this. @default 100 ms */
  flushMs?: number;
  /** A gap in offsets not filled by the server within this is read with `history`. @default 500 ms */
  gapFillMs?: number;
  /** Used until the server's `hello` says otherwise. @default 30000 ms */
  pingIntervalMs?: number;
  /** Timers and clock (tests). @default the global ones */
  clock?: Clock;
  /** Uniform in [0, 1) (tests). @default Math.random */
  random?: () => number;
}

/** Ably's model: retry quickly while `disconnected`, slowly once `suspended`; `closed` does not retry. */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'suspended' | 'closed';

export interface StateInfo {
  /** The close code that led here, when a connection closed. */
  code?: number;
  /**
   * The server's error code from the close reason (`token_expired`, `over_capacity`, …), or
   * what the app did: `paused`, `offline`, `closed`; `dead` when the client gave up on a silent
   * connection; `unauthorized` when the user must log in again.
   */
  reason?: string;
  /** When the next attempt starts, in ms from now (`disconnected`, `suspended`). */
  retryInMs?: number;
}

/** One message of a topic, as the app's handler receives it. */
export interface Message<T = unknown> {
  topic: string;
  /** Its place in the topic's log; absent for namespaces without history. */
  offset?: number;
  data: T;
  /** The publishing user (absent for server notifications). */
  from?: string;
  /** Server time of the publish, ms since the Unix epoch. */
  ts: number;
}

export interface SubscribeOptions {
  /** Resume from the stored position (and keep it). @default true */
  recover?: boolean;
  /** A subscription token, for a `members` namespace. */
  token?: string;
}

export interface PublishOptions {
  /** The idempotency key. @default a fresh key per call */
  key?: string;
  /** @default OneboxOptions.publishTimeoutMs */
  timeoutMs?: number;
}

export interface PublishResult {
  /** Absent for namespaces without history (fire-and-forget). */
  offset?: number;
  epoch?: string;
}

export interface PresenceResult {
  count: number;
  members: Array<{ user: string; conns: number }>;
  more: boolean;
}

/** A presence event of a subscribed topic: one of `join`, `leave`, `count`. */
export interface PresenceEvent {
  topic: string;
  join?: string;
  leave?: string;
  count?: number;
}

/** `recovered`: the topic caught up after a resume, nothing missed. */
export interface RecoveredEvent {
  topic: string;
  /** The offset the resume started after. */
  since: number;
  /** The head when the server answered; delivered up to here. */
  offset: number;
}

/** `gap`: messages between `since` and `offset` cannot be delivered; reload over REST. */
export interface GapEvent {
  topic: string;
  since: number | undefined;
  offset: number;
  epoch: string | undefined;
}

import type { OneboxError } from './errors.js';

/** `subscribed`: the server accepted the subscription on this connection (after each reconnect too). */
export interface SubscribedEvent {
  topic: string;
  /** The topic's head when the server answered (namespaces with history). */
  offset?: number;
  epoch?: string;
}

/** A subscription's events and their listeners' arguments. */
export interface SubscriptionEvents {
  subscribed: [SubscribedEvent];
  recovered: [RecoveredEvent];
  gap: [GapEvent];
  presence: [PresenceEvent];
  /** The server refused the subscription (`forbidden_topic`, `membership_revoked`, …) or a handler threw. */
  error: [OneboxError];
}

/** The client's events and their listeners' arguments. */
export interface OneboxEvents {
  state: [ConnectionState, StateInfo];
  /** The token was refused (4003, or a second 4001 in a row): log in again, then `resume()`. */
  unauthorized: [StateInfo];
  /** A refused token refresh, a storage failure: problems that do not change the state. */
  error: [OneboxError];
}
