/** What `subscribe` returns: the app's handle on one topic (events, unsubscribe). */
import { Emitter } from './emitter.js';
import type { Message, SubscriptionEvents } from './types.js';

export class Subscription<T = unknown> extends Emitter<SubscriptionEvents> {
  /** @internal */
  active = true;

  constructor(
    readonly topic: string,
    /** @internal */
    readonly handler: (msg: Message<T>) => void,
    private readonly remove: (sub: Subscription<any>) => void,
  ) {
    super();
  }

  /** Stop receiving this topic (the server is told once no subscription of it is left). */
  unsubscribe(): void {
    if (!this.active) return;
    this.active = false;
    this.remove(this);
  }

  /** @internal */
  fire<K extends keyof SubscriptionEvents>(event: K, ...args: SubscriptionEvents[K]): void {
    this.emit(event, ...args);
  }
}
