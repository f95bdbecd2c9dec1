/**
 * One Redis channel that every process subscribes to, for news each of them must hear
 * whatever connections it holds (session revocations: any process may be handed a revoked
 * session's token next). Messages are `<instance> <text>`; a process drops its own echoes.
 * Pub/sub delivers at most once, so `up` turns true only once the SUBSCRIBE is confirmed and
 * false as soon as either connection drops: the owner fills the gap from the store meanwhile.
 * Own pair of connections, like the hub's and presence's: none waits behind the others' traffic.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../../observability/logger.js';
import { RespConnection, type Reply } from './resp.js';

const backoff = (retries: number) => Math.min(50 * 2 ** retries, 5000) + Math.floor(Math.random() * 250);

export class RedisBroadcast {
  readonly instanceId = randomBytes(6).toString('hex');
  private readonly pub: RespConnection;
  private readonly sub: RespConnection;
  private subscribed = false;
  private wasUp = false;
  private receive: (text: string) => void = () => undefined;
  private changed: (up: boolean) => void = () => undefined;

  /**
   * @param channel the Redis channel, e.g. `ob:revoke`.
   */
  constructor(
    url: string,
    private readonly channel: string,
    private readonly log: Logger,
  ) {
    const common = { url, connectTimeoutMs: 2000, backoff };
    this.pub = new RespConnection({ ...common, onReady: () => this.update(), onDown: (err) => this.lost('publisher', err) });
    this.sub = new RespConnection({
      ...common,
      onReady: () => {
        this.sub.send('SUBSCRIBE', this.channel);
      },
      onDown: (err) => {
        this.subscribed = false;
        this.lost('subscriber', err);
      },
      onPush: (push) => this.pushed(push),
    });
  }

  /** Both connections are up and the channel's subscription is confirmed. */
  get up(): boolean {
    return this.subscribed && this.pub.isReady && this.sub.isReady;
  }

  start(receive: (text: string) => void, changed: (up: boolean) => void): void {
    this.receive = receive;
    this.changed = changed;
    this.pub.start();
    this.sub.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.pub.close(), this.sub.close()]);
  }

  /** Publish to the other processes; lost while Redis is down (they poll then). */
  publish(text: string): void {
    this.pub.call('PUBLISH', this.channel, `${this.instanceId} ${text}`).catch(() => undefined);
  }

  private pushed(push: Reply[]): void {
    const [kind, channel, message] = push;
    if (channel !== this.channel) return;
    if (kind === 'subscribe') {
      this.subscribed = true;
      this.update();
    } else if (kind === 'message' && typeof message === 'string') {
      const space = message.indexOf(' ');
      if (space > 0 && message.slice(0, space) !== this.instanceId) this.receive(message.slice(space + 1));
    }
  }

  private update(): void {
    const up = this.up;
    if (up === this.wasUp) return;
    this.wasUp = up;
    this.changed(up);
  }

  private lost(client: string, err: Error): void {
    if (this.wasUp) this.log.warn({ err: err.message, client, channel: this.channel }, 'backplane: broadcast channel down; polling the store');
    this.update();
  }
}
