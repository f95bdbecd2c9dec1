/**
 * React Native lifecycle wiring, without importing React Native (the package has no
 * dependency): pass `AppState` from 'react-native' and, optionally, the default export of
 * '@react-native-community/netinfo'. Background → `pause()` (the socket is closed cleanly and
 * no timer runs, as iOS would suspend it anyway), active → `resume()` (reconnect at once and
 * catch up); `inactive` (iOS: a call, the control centre) changes nothing. NetInfo offline →
 * `setOnline(false)` (no retries while there is no network), online → `setOnline(true)`.
 */
import type { Onebox } from './onebox.js';

/** The part of React Native's AppState used here. */
export interface AppStateLike {
  currentState?: string | null;
  addEventListener(type: 'change', listener: (state: string) => void): { remove(): void };
}

/** The part of @react-native-community/netinfo used here. */
export interface NetInfoLike {
  addEventListener(listener: (state: { isConnected: boolean | null; isInternetReachable?: boolean | null }) => void): () => void;
}

/** Removes the listeners `bindAppLifecycle` added. */
export type LifecycleBinding = () => void;

/** Pause in the background, resume in the foreground, stop retrying while offline. */
export function bindAppLifecycle(ob: Onebox, deps: { AppState: AppStateLike; NetInfo?: NetInfoLike }): LifecycleBinding {
  const onApp = (state: string) => {
    if (state === 'background') ob.pause();
    else if (state === 'active') ob.resume();
  };
  if (deps.AppState.currentState === 'background') ob.pause();
  const app = deps.AppState.addEventListener('change', onApp);
  const net = deps.NetInfo?.addEventListener((s) => {
    // null: not known yet (the first event on start-up), not "offline".
    if (s.isConnected === false || s.isInternetReachable === false) ob.setOnline(false);
    else if (s.isConnected === true) ob.setOnline(true);
  });
  return () => {
    app.remove();
    net?.();
  };
}
