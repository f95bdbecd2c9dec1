/**
 * The Redis backplane: the Hub for several processes and boxes. A message is published to
 * Redis with this instance's id, then delivered locally (which goes on while Redis is down);
 * other instances deliver what they receive to their own connections and drop their own
 * echoes. A process subscribes only to channels it has local interest in: the Registry
 * reports the first and last local connection of each user and topic (reference counting),
 * so a message reaches only the instances that need it. PUBLISH answers how many
 * instances received it, which is what tells `notify` whether a user is live anywhere.
 *
 * Channels are `ob:t:<topic>` and `ob:u:<userId>`. A membership change rides the user's
 * channel with `!` in place of the offset (`<instance> ! {"topic","member"}`): it reaches
 * exactly the processes holding the user, which are the only ones with live subscriptions
 * to drop or cached answers to refresh (realtime/members.ts). This is plain pub/sub for one Redis
 * server (or a primary with replicas); on Redis Cluster the same channels would move to
 * sharded pub/sub (SPUBLISH/SSUBSCRIBE) so each message stays on one shard.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../observability/logger.js';
import type { Hub, LocalHub, MembershipChange, Outgoing } from '../hub.js';
import { frames } from '../protocol.js';
import type { Registry } from '../registry.js';
import { RespConnection, type Reply } from './resp.js';

export class BackplaneStats {
  up = 0;
  published = 0;
  publishErrors = 0;
  received = 0;
}

const backoff = (retries: number) => Math.min(50 * 2 ** retries, 5000) + Math.floor(Math.random() * 250);

const channelOf = (kind: 'user' | 'topic', key: string) => `${kind === 'user' ? 'ob:u:' : 'ob:t:'}${key}`;

/** Channels per SUBSCRIBE when the subscriptions are rebuilt after a reconnect. */
const RESUBSCRIBE_BATCH = 1000;

export class RedisHub implements Hub {
  readonly stats = new BackplaneStats();
  readonly instanceId = randomBytes(6).toString('hex');
  private readonly pub: RespConnection;
  private readonly sub: RespConnection;
  private down = false;
  private readonly stopListening: () => void;

  constructor(
    url: string,
    private readonly local: LocalHub,
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    // Publishing fails fast while Redis is away (local delivery has happened already).
    // Subscriptions are not queued: on every (re)connect they are rebuilt from the Registry.
    const common = { url, connectTimeoutMs: 2000, backoff };
    this.pub = new RespConnection({ ...common, onReady: () => this.up(), onDown: (err) => this.lost('publisher', err) });
    this.sub = new RespConnection({
      ...common,
      onReady: () => {
        this.resubscribe();
        this.up();
      },
      onDown: (err) => this.lost('subscriber', err),
      onPush: (push) => this.pushed(push),
    });
    this.stopListening = registry.onInterest((kind, key, present) => {
      this.sub.send(present ? 'SUBSCRIBE' : 'UNSUBSCRIBE', channelOf(kind, key));
    });
  }

  /** Redis channels subscribed for local interest. */
  get channels(): number {
    return this.registry.users.size + this.registry.topics.size;
  }

  /** Connect in the background; startup does not wait for Redis. */
  start(): void {
    this.pub.start();
    this.sub.start();
  }

  async stop(): Promise<void> {
    this.stopListening();
    await Promise.all([this.pub.close(), this.sub.close()]);
  }

  // The PUBLISH is written before the local loop runs, so the other processes deliver
  // while this one does: a topic held by 16,700 sockets per worker kept this worker's loop
  // for about 250 ms, and the others used to start only after it. Redis down: forward()
  // fails at once and local delivery goes on.
  async publish(m: Outgoing): Promise<number> {
    const text = frames.msgRaw(m.topic, m.dataJson, m.from, m.offset, m.ts);
    const user = m.topic.startsWith('user:');
    const channel = user ? `ob:u:${m.topic.slice(5)}` : `ob:t:${m.topic}`;
    const selfSubscribed = user ? this.registry.users.has(m.topic.slice(5)) : this.registry.topics.has(m.topic);
    const remote = this.forward(channel, `${m.offset ?? '-'} ${text}`, selfSubscribed);
    return this.local.publishText(m.topic, text, m.offset) + (await remote);
  }

  async membership(change: MembershipChange): Promise<void> {
    const selfSubscribed = this.registry.users.has(change.userId);
    const remote = this.forward(channelOf('user', change.userId), `! ${JSON.stringify({ topic: change.topic, member: change.member })}`, selfSubscribed);
    await this.local.membership(change);
    await remote;
  }

  /**
   * Publish `<offset or -> <frame>` to the other instances, prefixed with this instance's id;
   * resolves to how many of them had subscribers.
   */
  private async forward(channel: string, text: string, selfSubscribed: boolean): Promise<number> {
    try {
      const receivers = await this.pub.call('PUBLISH', channel, `${this.instanceId} ${text}`);
      if (typeof receivers !== 'number') throw new Error('unexpected PUBLISH reply');
      this.stats.published++;
      return Math.max(0, receivers - (selfSubscribed ? 1 : 0));
    } catch {
      this.stats.publishErrors++;
      return 0;
    }
  }

  private up(): void {
    if (!this.pub.isReady || !this.sub.isReady) return;
    if (this.down) this.log.info('backplane: Redis reachable again');
    this.down = false;
    this.stats.up = 1;
  }

  private lost(client: string, err: Error): void {
    if (!this.down) this.log.warn({ err: err.message, client }, 'backplane: Redis unreachable; delivering locally only');
    this.down = true;
    this.stats.up = 0;
  }

  /** Subscribe again to every channel this process has local interest in. */
  private resubscribe(): void {
    let batch: string[] = [];
    const flush = () => {
      if (batch.length) this.sub.send('SUBSCRIBE', ...batch);
      batch = [];
    };
    for (const [kind, keys] of [['user', this.registry.users.keys()], ['topic', this.registry.topics.keys()]] as const) {
      for (const key of keys) {
        batch.push(channelOf(kind, key));
        if (batch.length === RESUBSCRIBE_BATCH) flush();
      }
    }
    flush();
  }

  private pushed(push: Reply[]): void {
    const [kind, channel, message] = push;
    if (kind === 'message' && typeof channel === 'string' && typeof message === 'string') this.receive(message, channel);
  }

  /** `<instance> <offset or -> <frame>`: our own echoes are dropped. */
  private receive(message: string, channel: string): void {
    const a = message.indexOf(' ');
    if (message.slice(0, a) === this.instanceId) return;
    const b = message.indexOf(' ', a + 1);
    this.stats.received++;
    const offsetText = message.slice(a + 1, b);
    if (offsetText === '!') {
      this.control(channel, message.slice(b + 1));
      return;
    }
    const offset = offsetText === '-' ? null : Number(offsetText);
    const topic = channel.startsWith('ob:u:') ? `user:${channel.slice(5)}` : channel.slice(5);
    this.local.publishText(topic, message.slice(b + 1), offset);
  }

  /** A membership change on a user's channel (another instance's admin API call). */
  private control(channel: string, body: string): void {
    if (!channel.startsWith('ob:u:')) return;
    try {
      const c = JSON.parse(body) as { topic?: unknown; member?: unknown };
      if (typeof c.topic !== 'string' || typeof c.member !== 'boolean') throw new Error('malformed membership change');
      void this.local.membership({ topic: c.topic, userId: channel.slice(5), member: c.member });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, channel }, 'backplane: ignored a malformed control message');
    }
  }
}
