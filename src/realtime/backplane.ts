/**
 * The Redis backplane: the Hub for several processes and boxes. Delivery is local first
 * (so it goes on while Redis is down), then published to Redis with this instance's id;
 * other instances deliver what they receive to their own connections and drop their own
 * echoes. A process subscribes only to channels it has local interest in: the Registry
 * reports the first and last local connection of each user and topic (reference counting),
 * so a message reaches only the instances that need it. PUBLISH answers how many
 * instances received it, which is what tells `notify` whether a user is live anywhere.
 *
 * Channels are `ob:t:<topic>` and `ob:u:<userId>`. This is plain pub/sub for one Redis
 * server (or a primary with replicas); on Redis Cluster the same channels would move to
 * sharded pub/sub (SPUBLISH/SSUBSCRIBE) so each message stays on one shard.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from 'redis';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../ops/logger.js';
import { exposeIntegers } from '../ops/metrics.js';
import type { Hub, LocalHub } from './hub.js';
import { frames } from './protocol.js';
import type { Registry } from './registry.js';

export class BackplaneStats {
  up = 0;
  published = 0;
  publishErrors = 0;
  received = 0;
  channels = 0;
}

const backoff = (retries: number) => Math.min(50 * 2 ** retries, 5000) + Math.floor(Math.random() * 250);

export class RedisHub implements Hub {
  readonly stats = new BackplaneStats();
  readonly instanceId = randomBytes(6).toString('hex');
  private readonly pub;
  private readonly sub;
  private readonly onMessage = (message: string, channel: string) => this.receive(message, channel);

  constructor(
    url: string,
    private readonly local: LocalHub,
    private readonly registry: Registry,
    log: Logger,
  ) {
    // Publishing fails fast while Redis is away (local delivery has happened already);
    // subscriptions queue and are replayed on reconnect.
    this.pub = createClient({ url, disableOfflineQueue: true, socket: { reconnectStrategy: backoff, connectTimeout: 2000 } });
    this.sub = createClient({ url, socket: { reconnectStrategy: backoff, connectTimeout: 2000 } });
    let down = false;
    for (const [name, client] of [['publisher', this.pub], ['subscriber', this.sub]] as const) {
      client.on('error', (err: Error) => {
        if (!down) log.warn({ err: err.message, client: name }, 'backplane: Redis unreachable; delivering locally only');
        down = true;
        this.stats.up = 0;
      });
      client.on('ready', () => {
        if (this.pub.isReady && this.sub.isReady) {
          if (down) log.info('backplane: Redis reachable again');
          down = false;
          this.stats.up = 1;
        }
      });
    }
    registry.onInterest = (kind, key, present) => {
      const channel = `${kind === 'user' ? 'ob:u:' : 'ob:t:'}${key}`;
      this.stats.channels += present ? 1 : -1;
      const op = present ? this.sub.subscribe(channel, this.onMessage) : this.sub.unsubscribe(channel, this.onMessage);
      op.catch((err: Error) => log.debug({ err: err.message, channel }, 'backplane: subscription change failed'));
    };
  }

  /** Register the backplane's figures with Prometheus (read at scrape time). */
  exposeMetrics(registry: PromRegistry): void {
    const b = this.stats;
    exposeIntegers(registry, 'gauge', 'onebox_backplane_up', 'Redis backplane connected (1) or not (0)', () => b.up);
    exposeIntegers(registry, 'gauge', 'onebox_backplane_channels', 'Redis channels subscribed for local interest', () => b.channels);
    exposeIntegers(registry, 'counter', 'onebox_backplane_published_total', 'Messages published to Redis', () => b.published);
    exposeIntegers(registry, 'counter', 'onebox_backplane_publish_errors_total', 'Publishes that failed (Redis down)', () => b.publishErrors);
    exposeIntegers(registry, 'counter', 'onebox_backplane_received_total', 'Messages received from other instances', () => b.received);
  }

  /** Connect in the background; startup does not wait for Redis. */
  start(): void {
    for (const c of [this.pub, this.sub]) c.connect().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.registry.onInterest = null;
    await Promise.allSettled([this.pub.close(), this.sub.close()]);
  }

  async publish(topic: string, data: unknown, from?: string): Promise<number> {
    const text = frames.msg(topic, data, from);
    const local = this.local.publishText(topic, text);
    return local + (await this.forward(`ob:t:${topic}`, text, this.registry.topics.has(topic)));
  }

  async sendToUser(userId: string, data: unknown): Promise<number> {
    const text = frames.msg(`user:${userId}`, data);
    const local = this.local.sendTextToUser(userId, text);
    return local + (await this.forward(`ob:u:${userId}`, text, this.registry.users.has(userId)));
  }

  /** Publish to the other instances; resolves to how many of them had subscribers. */
  private async forward(channel: string, text: string, selfSubscribed: boolean): Promise<number> {
    try {
      const receivers = await this.pub.publish(channel, `${this.instanceId} ${text}`);
      this.stats.published++;
      return Math.max(0, receivers - (selfSubscribed ? 1 : 0));
    } catch {
      this.stats.publishErrors++;
      return 0;
    }
  }

  private receive(message: string, channel: string): void {
    const space = message.indexOf(' ');
    if (message.slice(0, space) === this.instanceId) return;
    this.stats.received++;
    const text = message.slice(space + 1);
    if (channel.startsWith('ob:u:')) this.local.sendTextToUser(channel.slice(5), text);
    else this.local.publishText(channel.slice(5), text);
  }
}
