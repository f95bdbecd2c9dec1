/**
 * Who may read and publish a topic (docs/protocol.md, "Namespaces"): the namespace's
 * `subscribe` and `publish` rules. Reading a `members` topic takes a subscription token
 * (checked when given, and then it decides) or a membership (a cached lookup, members.ts).
 */
import type { NamespaceRules } from './channels.js';
import { namespaceOf } from './channels.js';
import { holds, type Conn } from './conn.js';
import type { SubTokenCheck } from './gateway-types.js';
import type { MemberCache } from './members.js';

/** Why a read was refused, by code. */
export type ReadAccess = true | 'forbidden_topic' | 'invalid_subscription_token' | 'subscription_token_expired';
export const READ_REFUSED: Record<Exclude<ReadAccess, true>, string> = {
  forbidden_topic: 'not allowed to read this topic',
  invalid_subscription_token: 'the subscription token is invalid, or for another user or topic',
  subscription_token_expired: 'the subscription token has expired',
};

export class Access {
  constructor(
    private readonly members: MemberCache,
    private readonly verifySubToken: SubTokenCheck,
  ) {}

  /**
   * Whether this connection may read the topic: true, the refusal's code, or a promise of
   * either (a membership lookup or a token to verify).
   */
  mayRead(conn: Conn, topic: string, rules: NamespaceRules, token: string | undefined): ReadAccess | Promise<ReadAccess> {
    switch (rules.subscribe) {
      case 'authenticated':
        return true;
      case 'own':
        return topic.slice(namespaceOf(topic).length + 1) === conn.userId ? true : 'forbidden_topic';
      case 'members': {
        // A token, when given, decides; without one, the membership does.
        if (token !== undefined) return this.verifySubToken(token, conn.userId, topic).then((code) => code ?? true);
        const member = this.members.check(topic, conn.userId);
        return member === true ? true : member === false ? 'forbidden_topic' : member.then((m) => m || 'forbidden_topic');
      }
    }
  }

  /** Whether this connection may publish to the topic: a `members` topic it holds counts as membership. */
  mayPublish(conn: Conn, topic: string, rules: NamespaceRules): boolean | Promise<boolean> {
    switch (rules.publish) {
      case 'none':
        return false;
      case 'authenticated':
        return true;
      case 'members':
        return holds(conn, topic) || this.members.check(topic, conn.userId);
    }
  }
}
