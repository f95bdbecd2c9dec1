/**
 * Presence across processes and boxes through Redis: each process owns its share, with an
 * expiry, so the members of a crashed process disappear and never linger.
 *
 * - `ob:pa:<instance>`: this process is alive. Set with PX = ttl, refreshed every third of
 *   it by one process-wide interval (PEXPIRE: O(1), whatever the number of members).
 * - After every (re)connect, and when that PEXPIRE answers 0 (it had expired: a stall),
 *   the process takes a new instance id and announces its whole share under it. Changes
 *   missed meanwhile (a user gone while Redis was away) stay only under the old id, which
 *   expires like a crashed process's: nothing lingers, and a user present under both ids
 *   never leaves in between.
 * - `ob:pr:<topic>`: a hash, field `<instance> <user>`, value that instance's connections of
 *   the user in the topic; written on each local change (HSET, HDEL at 0), then published on
 *   `ob:p:<topic>` as `<instance> <n> <user>` to the processes tracking the topic.
 * - A process starting to track a topic subscribes to its channel and, once the SUBSCRIBE is
 *   confirmed, reads the hash through a script that keeps only fields of live instances (and
 *   deletes the others). A change published while the read is in flight wins over the read.
 * - Each interval a process asks whether the instances it holds members of are alive (one
 *   MGET); a missing key drops that instance's members here (leave events after the grace)
 *   and its fields in the topics tracked here. So a crashed process's users leave within
 *   4/3 × ttl + grace, and the phones it held that reconnect elsewhere meanwhile never leave.
 *
 * Own pair of connections (as the hub's): the hub's channels are per user and topic with any
 * interest, these only per presence topic, and neither depends on the other's traffic.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../observability/logger.js';
import type { Presence, PresenceSync } from '../presence.js';
import { RespConnection, type Reply } from './resp.js';

const backoff = (retries: number) => Math.min(50 * 2 ** retries, 5000) + Math.floor(Math.random() * 250);
const noop = () => undefined;

const aliveKey = (instance: string) => `ob:pa:${instance}`;
const hashKey = (topic: string) => `ob:pr:${topic}`;
const CHANNEL = 'ob:p:';
/** A topic hash outlives its last write this long (a crashed process's fields in a topic nobody reads). */
const HASH_TTL_MS = 24 * 3600_000;
/** Own fields are written again this often, which renews the hashes' expiry. */
const REWRITE_MS = 3600_000;

/** The live instances' fields of a topic hash other than ARGV[1]'s; dead instances' fields are deleted. */
const SNAPSHOT = `
local h = redis.call('HGETALL', KEYS[1])
local out, alive = {}, {}
for i = 1, #h, 2 do
  local f = h[i]
  local inst = string.sub(f, 1, string.find(f, ' ', 1, true) - 1)
  if inst ~= ARGV[1] then
    local a = alive[inst]
    if a == nil then
      a = redis.call('EXISTS', 'ob:pa:' .. inst) == 1
      alive[inst] = a
    end
    if a then
      out[#out + 1] = f
      out[#out + 1] = h[i + 1]
    else
      redis.call('HDEL', KEYS[1], f)
    end
  end
end
return out`;

export class PresenceStats {
  /** Changes of this process's share written to Redis. */
  published = 0;
  /** Changes received from other instances. */
  received = 0;
  /** Instances found dead (their key expired). */
  expired = 0;
}

interface Loading {
  /** Fields changed by a message while the snapshot was in flight: the message wins. */
  touched: Set<string>;
  done: Promise<void>;
  resolve: () => void;
  /** The first load is silent: the members were there before this process looked. */
  silent: boolean;
}

export class RedisPresence implements PresenceSync {
  readonly stats = new PresenceStats();
  /** This process's id in Redis; a new one after each (re)connect. */
  private instanceId = '';
  /** Every id this process has used: its own messages are not news. */
  private readonly ownIds = new Set<string>();
  private readonly pub: RespConnection;
  private readonly sub: RespConnection;
  /** Other instances' fields per tracked topic: `<instance> <user>` → connections. */
  private readonly remote = new Map<string, Map<string, number>>();
  private readonly loading = new Map<string, Loading>();
  /** Other instances we hold members of, with how many fields. */
  private readonly instances = new Map<string, number>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private rewriteAt = 0;

  /** @param ttlMs how long this process's share outlives its last refresh (PRESENCE_TTL_MS). */
  constructor(
    url: string,
    private readonly presence: Presence,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {
    const common = { url, connectTimeoutMs: 2000, backoff };
    this.pub = new RespConnection({ ...common, onReady: () => void this.announce(), onDown: noop });
    this.rotate();
    this.sub = new RespConnection({
      ...common,
      onReady: () => this.resubscribe(),
      onDown: () => this.settleLoads(),
      onPush: (push) => this.pushed(push),
    });
  }

  start(): void {
    this.pub.start();
    this.sub.start();
    this.timer ??= setInterval(() => void this.refresh(), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.timer.unref?.();
  }

  /** Give up the share (connections closed already have removed their fields) and disconnect. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pub.call('DEL', aliveKey(this.instanceId)).catch(noop);
    await Promise.all([this.pub.close(), this.sub.close()]);
    this.settleLoads();
  }

  track(topic: string): void {
    this.remote.set(topic, new Map());
    this.load(topic, true);
  }

  untrack(topic: string): void {
    const fields = this.remote.get(topic);
    if (!fields) return;
    this.remote.delete(topic);
    for (const f of fields.keys()) this.forgetField(f);
    this.loading.get(topic)?.resolve();
    this.loading.delete(topic);
    this.sub.send('UNSUBSCRIBE', CHANNEL + topic);
  }

  local(topic: string, user: string, n: number): void {
    if (!this.pub.isReady) return; // announced in full on reconnect
    const field = `${this.instanceId} ${user}`;
    const key = hashKey(topic);
    if (n > 0) {
      this.pub.call('HSET', key, field, String(n)).catch(noop);
      if (n === 1) this.pub.call('PEXPIRE', key, String(HASH_TTL_MS)).catch(noop);
    } else {
      this.pub.call('HDEL', key, field).catch(noop);
    }
    this.pub.call('PUBLISH', CHANNEL + topic, `${this.instanceId} ${n} ${user}`).catch(noop);
    this.stats.published++;
  }

  loaded(topic: string): Promise<void> | null {
    return this.loading.get(topic)?.done ?? null;
  }

  /** Subscribe to a topic's channel; its snapshot is read once the subscription is confirmed. */
  private load(topic: string, silent: boolean): void {
    let resolve: () => void = noop;
    const done = new Promise<void>((r) => (resolve = r));
    this.loading.get(topic)?.resolve();
    this.loading.set(topic, { touched: new Set(), done, resolve, silent });
    // Redis away: the members known here answer; the reconnect loads again.
    if (!this.sub.send('SUBSCRIBE', CHANNEL + topic)) this.settle(topic);
  }

  private settle(topic: string): void {
    this.loading.get(topic)?.resolve();
    this.loading.delete(topic);
  }

  private settleLoads(): void {
    for (const l of this.loading.values()) l.resolve();
    this.loading.clear();
  }

  private async snapshot(topic: string): Promise<void> {
    const l = this.loading.get(topic);
    if (!l) return;
    let reply: Reply;
    try {
      reply = await this.pub.call('EVAL', SNAPSHOT, '1', hashKey(topic), this.instanceId);
    } catch {
      reply = null;
    }
    const fields = this.remote.get(topic);
    if (this.loading.get(topic) !== l) return; // untracked or reloaded meanwhile
    this.settle(topic);
    if (!fields || !Array.isArray(reply)) return;
    const next = new Map<string, number>();
    for (let i = 0; i + 1 < reply.length; i += 2) next.set(String(reply[i]), Number(reply[i + 1]));
    for (const f of [...fields.keys()]) if (!next.has(f) && !l.touched.has(f)) this.apply(topic, fields, f, 0, l.silent);
    for (const [f, n] of next) if (!l.touched.has(f)) this.apply(topic, fields, f, n, l.silent);
  }

  /** Set another instance's connections of a user in a topic, and tell presence the difference. */
  private apply(topic: string, fields: Map<string, number>, field: string, n: number, silent: boolean): void {
    const old = fields.get(field) ?? 0;
    if (!Number.isSafeInteger(n) || n < 0 || n === old) return;
    const space = field.indexOf(' ');
    const instance = field.slice(0, space);
    if (n === 0) {
      fields.delete(field);
      this.forgetField(field);
    } else {
      fields.set(field, n);
      if (old === 0) this.instances.set(instance, (this.instances.get(instance) ?? 0) + 1);
    }
    this.presence.remote(topic, field.slice(space + 1), n - old, silent);
  }

  private forgetField(field: string): void {
    const instance = field.slice(0, field.indexOf(' '));
    const left = (this.instances.get(instance) ?? 1) - 1;
    if (left > 0) this.instances.set(instance, left);
    else this.instances.delete(instance);
  }

  private pushed(push: Reply[]): void {
    const [kind, channel, message] = push;
    if (typeof channel !== 'string' || !channel.startsWith(CHANNEL)) return;
    const topic = channel.slice(CHANNEL.length);
    if (kind === 'subscribe') {
      void this.snapshot(topic);
      return;
    }
    if (kind !== 'message' || typeof message !== 'string') return;
    const a = message.indexOf(' ');
    const b = message.indexOf(' ', a + 1);
    const instance = message.slice(0, a);
    if (this.ownIds.has(instance) || a < 0 || b < 0) return;
    const fields = this.remote.get(topic);
    if (!fields) return;
    this.stats.received++;
    const field = `${instance} ${message.slice(b + 1)}`;
    this.loading.get(topic)?.touched.add(field);
    this.apply(topic, fields, field, Number(message.slice(a + 1, b)), false);
  }

  /** (Re)connected subscriber: listen to every tracked topic again and reconcile its members. */
  private resubscribe(): void {
    for (const topic of this.remote.keys()) this.load(topic, false);
  }

  /**
   * Write this process's whole share: the alive key, every field. After a reconnect or an
   * expiry (`publish`), under a new id, and published; the hourly rewrite renews in place.
   */
  private async announce(publish = true): Promise<void> {
    if (publish) this.rotate();
    try {
      await this.pub.call('SET', aliveKey(this.instanceId), '1', 'PX', String(this.ttlMs));
      this.rewriteAt = Date.now() + REWRITE_MS;
      const touched = new Set<string>();
      for (const [topic, user, n] of this.presence.localCounts()) {
        const key = hashKey(topic);
        this.pub.call('HSET', key, `${this.instanceId} ${user}`, String(n)).catch(noop);
        if (!touched.has(topic)) {
          touched.add(topic);
          this.pub.call('PEXPIRE', key, String(HASH_TTL_MS)).catch(noop);
        }
        if (publish) this.pub.call('PUBLISH', CHANNEL + topic, `${this.instanceId} ${n} ${user}`).catch(noop);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'presence: announcing this process failed');
    }
  }

  /** Take a new instance id; the old one's key is deleted (others drop its fields at their next check). */
  private rotate(): void {
    if (this.instanceId) this.pub.call('DEL', aliveKey(this.instanceId)).catch(noop);
    this.instanceId = randomBytes(6).toString('hex');
    this.ownIds.add(this.instanceId);
  }

  /** The interval: renew this process's key, then drop the members of instances whose key is gone. */
  private async refresh(): Promise<void> {
    if (!this.pub.isReady) return;
    try {
      const renewed = await this.pub.call('PEXPIRE', aliveKey(this.instanceId), String(this.ttlMs));
      if (renewed === 0) await this.announce(true);
      else if (Date.now() >= this.rewriteAt) await this.announce(false);
      const others = [...this.instances.keys()];
      if (others.length === 0) return;
      const alive = await this.pub.call('MGET', ...others.map(aliveKey));
      if (!Array.isArray(alive)) return;
      others.forEach((instance, i) => {
        if (alive[i] === null) this.expire(instance);
      });
    } catch {
      // Redis away: nothing is concluded about anyone; the reconnect announces again.
    }
  }

  /** An instance's key expired: its members here go (after the grace), its fields in Redis too. */
  private expire(instance: string): void {
    this.stats.expired++;
    this.log.info({ instance }, 'presence: an instance expired; its members leave');
    const prefix = `${instance} `;
    for (const [topic, fields] of this.remote) {
      const gone = [...fields.keys()].filter((f) => f.startsWith(prefix));
      if (gone.length === 0) continue;
      for (const f of gone) this.apply(topic, fields, f, 0, false);
      this.pub.call('HDEL', hashKey(topic), ...gone).catch(noop);
    }
    this.instances.delete(instance);
  }
}
