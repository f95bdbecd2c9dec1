/**
 * Members of `members` topics (admin token): `PUT /v1/topics/:topic/members/:userId` adds,
 * `DELETE` removes, `GET /v1/topics/:topic/members?limit&cursor` lists by user id. A change
 * goes through the hub to every process holding the user: a removal drops their live
 * subscriptions to the topic at once, with `membership_revoked`, and every change refreshes
 * the gateways' membership caches.
 */
import { Hono, type Context } from 'hono';
import { isForeignKeyViolation } from '../../store/db-errors.js';
import { isValidTopic } from '../../realtime/protocol.js';
import type { AppEnv, Services } from '../context.js';
import { AppError } from '../../errors.js';
import { requireAdmin } from '../middleware/auth.js';

/** Members one page lists at most, and by default. */
export const MEMBERS_PAGE_MAX = 1000;
const MEMBERS_PAGE_DEFAULT = 100;

export function memberRoutes(s: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const admin = requireAdmin(s);

  /** The path's topic, if it is a valid topic of a `members` namespace. */
  const topicOf = (c: Context<AppEnv>): string => {
    const topic = c.req.param('topic') ?? '';
    if (!isValidTopic(topic)) throw new AppError('validation_failed', 'topic must match [A-Za-z0-9][A-Za-z0-9_.:-]{0,99}', { field: 'topic' });
    const rules = s.channels.rules(topic);
    if (!rules) throw new AppError('unknown_namespace', 'no namespace is configured for this topic');
    if (rules.subscribe !== 'members') throw new AppError('not_members_namespace', "this topic's namespace is not subscribe: members");
    return topic;
  };

  const existingUser = async (c: Context<AppEnv>): Promise<string> => {
    const userId = c.req.param('userId') ?? '';
    if (!(await s.users.exists(userId))) throw new AppError('not_found', 'no such user');
    return userId;
  };

  app.put('/v1/topics/:topic/members/:userId', admin, async (c) => {
    const topic = topicOf(c);
    const userId = await existingUser(c);
    let added: boolean;
    try {
      added = await s.members.add(topic, userId);
    } catch (err) {
      // Deleted between the check and the insert.
      if (isForeignKeyViolation(err)) throw new AppError('not_found', 'no such user', { cause: err });
      throw err;
    }
    await s.hub.membership({ topic, userId, member: true });
    return c.json({ topic, userId }, added ? 201 : 200);
  });

  app.delete('/v1/topics/:topic/members/:userId', admin, async (c) => {
    const topic = topicOf(c);
    const userId = await existingUser(c);
    await s.members.remove(topic, userId);
    // Also when they were no member: a connection subscribed by a subscription token loses it too.
    await s.hub.membership({ topic, userId, member: false });
    return c.body(null, 204);
  });

  app.get('/v1/topics/:topic/members', admin, async (c) => {
    const topic = topicOf(c);
    const limitText = c.req.query('limit');
    const limit = limitText === undefined ? MEMBERS_PAGE_DEFAULT : Number(limitText);
    if (!/^\d{1,7}$/.test(limitText ?? '1') || limit < 1 || limit > MEMBERS_PAGE_MAX) {
      throw new AppError('validation_failed', `limit must be an integer from 1 to ${MEMBERS_PAGE_MAX}`, { field: 'limit' });
    }
    const cursor = c.req.query('cursor');
    let after: string | undefined;
    if (cursor !== undefined) {
      after = /^[A-Za-z0-9_-]{1,400}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
      if (after === '') throw new AppError('validation_failed', 'cursor must be the `next` of a previous page', { field: 'cursor' });
    }
    const page = await s.members.list(topic, limit, after);
    return c.json({
      members: page.members.map((m) => ({ userId: m.userId, addedAt: new Date(m.addedAt).toISOString() })),
      next: page.next === null ? null : Buffer.from(page.next, 'utf8').toString('base64url'),
    });
  });
  return app;
}
