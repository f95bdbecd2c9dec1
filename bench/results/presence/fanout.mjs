// Presence fan-out in one process, without sockets: N users join one `room:` topic through the
// gateway (fake transport: a send costs a counter), then one more join and one leave.
// Run after `npm run build`: node bench/results/presence/fanout.mjs [N] [PRESENCE_EVENTS_MAX]
import { Gateway } from '../../../dist/src/realtime/gateway.js';
import { LocalLimits } from '../../../dist/src/lib/local-limits.js';
import { createLogger } from '../../../dist/src/observability/logger.js';

const N = Number(process.argv[2] ?? 10_000);
const eventsMax = Number(process.argv[3] ?? 1000);
let frames = 0;
const ops = { send: () => void frames++, buffered: () => 0, ping() {}, close() {}, terminate() {} };
const gw = new Gateway(
  { maxConnections: N + 10, maxConnectionsPerIp: undefined, trustProxy: { kind: 'off' }, pingIntervalMs: 30_000, idleTimeoutMs: 75_000,
    maxBufferedBytes: 1 << 20, maxSubscriptions: 10, maxJsonDepth: 8, wsPublishPrefixes: [], wsPublishPerS: 5 },
  { authenticate: async (r) => ({ ok: true, userId: r.authorization }), limits: new LocalLimits(), log: createLogger('silent'), presence: { eventsMax, graceMs: 0 } },
);
gw.attach(ops);
const req = (u) => ({ url: '/v1/ws', authorization: u, ip: '127.0.0.1', version: '13', key: 'dGhlIHNhbXBsZSBub25jZQ==', forwarded: undefined });
const conns = [];
for (let i = 0; i < N; i++) {
  const d = await gw.authorize(req(`u${i}`));
  gw.open(d.conn, {});
  conns.push(d.conn);
}
const sub = JSON.stringify({ op: 'sub', topic: 'room:big' });
frames = 0;
let t = performance.now();
for (const c of conns) gw.message(c, sub, false);
const joinMs = performance.now() - t;
const joinFrames = frames - N; // minus the sub acks
frames = 0;
t = performance.now();
gw['presence'].tick(Date.now() + 2000); // the count frame of the storm
const countMs = performance.now() - t;
const countFrames = frames;
const d = await gw.authorize(req('late'));
gw.open(d.conn, {});
frames = 0;
t = performance.now();
gw.message(d.conn, sub, false);
gw.closed(conns[0], 1000);
const oneMs = performance.now() - t;
console.log(JSON.stringify({ N, eventsMax, joinMs: Math.round(joinMs), joinFrames, countMs: +countMs.toFixed(2), countFrames, oneJoinAndLeaveMs: +oneMs.toFixed(3), oneJoinAndLeaveFrames: frames - 1 }));
gw.stop();
