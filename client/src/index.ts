/**
 * onebox-client: the onebox realtime client for browsers, React Native and Node ≥ 20.
 * Usage and behaviour: client/README.md. Wire protocol: docs/protocol.md.
 */
export { Onebox, SUBPROTOCOL, CLOSE } from './onebox.js';
export { Subscription } from './subscription.js';
export { OneboxError } from './errors.js';
export { memoryStorage, type Position } from './storage.js';
export { BACKOFF_DEFAULTS, backoffDelay, suspendedDelay, restartDelay, hintedDelay, parseCloseReason } from './backoff.js';
export { bindAppLifecycle, type AppStateLike, type NetInfoLike, type LifecycleBinding } from './react-native.js';
export type * from './types.js';
