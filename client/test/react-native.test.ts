/**
 * React Native cannot run here: the lifecycle is tested through a shim with React Native's
 * semantics. `RNWebSocket` takes (url, protocols, options), refuses close codes other than
 * 1000 and 3000-4999 as RN and browsers do, and reports its close later (after the close
 * handshake, or long after the OS froze a backgrounded app); `AppState` emits
 * active/inactive/background, NetInfo emits {isConnected, isInternetReachable} with null while
 * unknown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bindAppLifecycle, type AppStateLike, type NetInfoLike } from '../src/index.js';
import { FakeSocket, harness, msg, settle } from './fakes.js';

class RNWebSocket extends FakeSocket {
  constructor(url: string, protocols?: string | string[], readonly options?: { headers?: Record<string, string> }) {
    super(url, protocols);
  }

  override close(code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) throw new Error(`invalid close code ${code}`);
    super.close(code, reason);
  }
}

function fakeAppState(initial = 'active') {
  const listeners = new Set<(s: string) => void>();
  const AppState: AppStateLike & { set(s: string): void; count(): number } = {
    currentState: initial,
    addEventListener: (_type, fn) => {
      listeners.add(fn);
      return { remove: () => listeners.delete(fn) };
    },
    set(s) {
      this.currentState = s;
      for (const fn of listeners) fn(s);
    },
    count: () => listeners.size,
  };
  return AppState;
}

function fakeNetInfo() {
  const listeners = new Set<(s: { isConnected: boolean | null; isInternetReachable?: boolean | null }) => void>();
  const NetInfo: NetInfoLike & { set(isConnected: boolean | null, isInternetReachable?: boolean | null): void; count(): number } = {
    addEventListener: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    set(isConnected, isInternetReachable = isConnected) {
      for (const fn of listeners) fn({ isConnected, isInternetReachable });
    },
    count: () => listeners.size,
  };
  return NetInfo;
}

test('background: the socket closes with 1000 and no timer runs; inactive changes nothing; active: reconnect at once and catch up, each message once in order', async () => {
  const h = await harness({ WebSocket: RNWebSocket });
  const AppState = fakeAppState();
  const unbind = bindAppLifecycle(h.ob, { AppState });
  const got: number[] = [];
  h.ob.subscribe('user:u1', (m) => got.push(m.offset!));
  await settle();
  const s = FakeSocket.last();
  s.accept({ exp: h.clock.now() / 1000 + 3600 });
  s.ackSubs(() => ({ offset: 0, epoch: 'E' }));
  s.receive(msg('user:u1', 1));
  AppState.set('inactive');
  assert.equal(s.closedWith, undefined, 'inactive (a call, the control centre) keeps the socket');
  AppState.set('background');
  assert.deepEqual(s.closedWith, { code: 1000, reason: 'paused' });
  assert.deepEqual(h.clock.pending(), [], 'no timer while in the background');
  await h.clock.advance(600_000);
  assert.equal(FakeSocket.all.length, 1);

  AppState.set('active');
  await settle();
  const s2 = FakeSocket.last();
  assert.equal(FakeSocket.all.length, 2, 'reconnected at once');
  s2.accept();
  assert.deepEqual(s2.ops('sub')[0]!.since, { offset: 1, epoch: 'E' });
  s2.receive(msg('user:u1', 5)); // live, ahead of the replay
  s2.ackSubs(() => ({ offset: 5, epoch: 'E', recovered: true }));
  for (const o of [2, 3, 4, 5]) s2.receive(msg('user:u1', o));
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  unbind();
  assert.equal(AppState.count(), 0);
  h.ob.close();
});

test('a socket the OS dropped while frozen reports its close after resume: ignored, the new connection stays', async () => {
  const h = await harness({ WebSocket: RNWebSocket });
  const AppState = fakeAppState();
  bindAppLifecycle(h.ob, { AppState });
  const old = FakeSocket.last();
  old.accept();
  const closeLater = old.onclose;
  AppState.set('background');
  AppState.set('active');
  await settle();
  FakeSocket.last().accept();
  closeLater?.({ code: 1006, reason: '' });
  assert.equal(h.state(), 'connected');
  await h.clock.advance(60_000);
  assert.equal(FakeSocket.all.length, 2);
  h.ob.close();
});

test('started in the background: paused from the start, no socket until active', async () => {
  const h = await harness({ WebSocket: RNWebSocket });
  FakeSocket.last().serverClose(1006); // the attempt the constructor started
  const AppState = fakeAppState('background');
  bindAppLifecycle(h.ob, { AppState });
  assert.deepEqual(h.clock.pending(), []);
  await h.clock.advance(60_000);
  assert.equal(FakeSocket.all.length, 1);
  AppState.set('active');
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  h.ob.close();
});

test('NetInfo: offline stops the retries, unknown (null) changes nothing, online connects at once', async () => {
  const h = await harness({ WebSocket: RNWebSocket });
  const NetInfo = fakeNetInfo();
  const unbind = bindAppLifecycle(h.ob, { AppState: fakeAppState(), NetInfo });
  FakeSocket.last().accept();
  NetInfo.set(false);
  assert.equal(h.state(), 'connected', 'a live socket is kept: the watchdog decides');
  FakeSocket.last().serverClose(1006);
  assert.deepEqual(h.states[h.states.length - 1], ['disconnected', { code: 1006, reason: 'offline' }]);
  assert.deepEqual(h.clock.pending(), []);
  NetInfo.set(null);
  await h.clock.advance(60_000);
  assert.equal(FakeSocket.all.length, 1);
  NetInfo.set(true, false);
  await settle();
  assert.equal(FakeSocket.all.length, 1, 'connected to a network without internet: still offline');
  NetInfo.set(true);
  await settle();
  assert.equal(FakeSocket.all.length, 2);
  unbind();
  assert.equal(NetInfo.count(), 0);
  h.ob.close();
});
