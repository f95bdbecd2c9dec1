/**
 * Namespace rules: a topic's namespace is the part before its first `:` (`room:1` → `room`;
 * a topic without `:` is in namespace `""`). Each namespace says who may read it, who may
 * publish to it and how fast, how much history its topics keep, whether a `since` is
 * honoured, and whether presence is tracked. A topic whose namespace is not configured is
 * refused (`unknown_namespace`): a typo never opens a channel.
 *
 * The rules are the built-in defaults below, or, as a whole, the validated JSON file
 * CHANNELS_FILE names (`user` is required and must be `own`):
 * `{"namespaces":{"user":{"subscribe":"own","history":{"size":500,"ttlS":259200}},
 *   "room":{"subscribe":"members","publish":"members","publishPerS":5,"history":{"size":100,"ttlS":3600}}}}`
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../config.js';

/**
 * Who may read (`sub`, `history`, `recv`): `own` only `<namespace>:<your user id>`;
 * `authenticated` any signed-in user; `members` the topic's members (admin API) or the
 * holder of a subscription token for it.
 */
export type SubscribeRule = 'own' | 'authenticated' | 'members';
/**
 * Who may `pub`: nobody (`none`: server-side notify only), any signed-in user, or a member
 * (a member of the topic, or a connection subscribed to it by a subscription token).
 */
export type PublishRule = 'none' | 'members' | 'authenticated';

export interface NamespaceRules {
  subscribe: SubscribeRule;
  publish: PublishRule;
  /** Client publishes per second per connection to this namespace (burst of twice that). @default WS_PUBLISH_PER_S */
  publishPerS: number | undefined;
  /** Messages kept per topic (0: fire-and-forget, no store write, no offset) and their age bound. */
  history: { size: number; ttlS: number };
  /** Whether `sub` honours `since` (replay of what was missed). */
  recover: boolean;
  /** Whether presence is tracked. Parsed and documented; no behaviour yet (issue 14, presence part). */
  presence: boolean;
}

const Rules = z.strictObject({
  subscribe: z.enum(['own', 'authenticated', 'members']),
  publish: z.enum(['none', 'members', 'authenticated']).default('none'),
  publishPerS: z.number().int().min(1).max(1_000_000).optional(),
  history: z
    .strictObject({
      size: z.number().int().min(0).max(1_000_000),
      ttlS: z.number().int().min(0).max(365 * 86_400),
    })
    .default({ size: 0, ttlS: 0 }),
  recover: z.boolean().default(true),
  presence: z.boolean().default(false),
});

const NAMESPACE = /^[A-Za-z0-9_.-]{0,100}$/;

const File = z.strictObject({
  namespaces: z
    .record(z.string().regex(NAMESPACE, 'a namespace is the part of a topic before its first ":" ([A-Za-z0-9_.-], or "" for topics without ":")'), Rules)
    .refine((ns) => ns.user !== undefined, 'the namespace "user" is required (notifications go to user:<id>)')
    .refine((ns) => ns.user === undefined || ns.user.subscribe === 'own', { message: 'user must be subscribe "own"', path: ['user', 'subscribe'] }),
});

const HOUR = 3600;

/** The built-in rules (DESIGN.md, issue 14). A CHANNELS_FILE replaces them as a whole. */
export const DEFAULT_NAMESPACES: Readonly<Record<string, NamespaceRules>> = {
  user: { subscribe: 'own', publish: 'none', publishPerS: undefined, history: { size: 500, ttlS: 72 * HOUR }, recover: true, presence: false },
  public: { subscribe: 'authenticated', publish: 'none', publishPerS: undefined, history: { size: 100, ttlS: 600 }, recover: true, presence: false },
  room: { subscribe: 'members', publish: 'members', publishPerS: undefined, history: { size: 100, ttlS: HOUR }, recover: true, presence: true },
  bench: { subscribe: 'authenticated', publish: 'none', publishPerS: undefined, history: { size: 0, ttlS: 0 }, recover: false, presence: false },
};

/** The namespace of a topic: the part before its first `:`, or `""`. */
export function namespaceOf(topic: string): string {
  const colon = topic.indexOf(':');
  return colon < 0 ? '' : topic.slice(0, colon);
}

export class Channels {
  private readonly byName: Map<string, NamespaceRules>;

  /** @param namespaces every namespace there is; others are unknown. @default DEFAULT_NAMESPACES */
  constructor(namespaces: Readonly<Record<string, Partial<NamespaceRules> & Pick<NamespaceRules, 'subscribe'>>> = DEFAULT_NAMESPACES) {
    this.byName = new Map(Object.entries(namespaces).map(([name, r]) => [name, { publishPerS: undefined, ...Rules.parse(r) }]));
  }

  /** Read and validate CHANNELS_FILE; a bad file stops the boot with a message naming it. */
  static load(file: string | undefined): Channels {
    if (!file) return new Channels();
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new ConfigError(`invalid configuration:\n  CHANNELS_FILE=${JSON.stringify(file)}: ${(err as Error).message}`);
    }
    const r = File.safeParse(parsed);
    if (!r.success) {
      const lines = r.error.issues.map((i) => `  CHANNELS_FILE=${JSON.stringify(file)} ${i.path.join('.') || '(file)'}: ${i.message}`);
      throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
    }
    return new Channels(r.data.namespaces);
  }

  /** The rules of a topic's namespace; undefined when the namespace is not configured. */
  rules(topic: string): NamespaceRules | undefined {
    return this.byName.get(namespaceOf(topic));
  }

  /** The configured namespaces and their rules. */
  entries(): IterableIterator<[string, NamespaceRules]> {
    return this.byName.entries();
  }

  /** True when the topic's messages are committed to the log with an offset. */
  durable(topic: string): boolean {
    return (this.rules(topic)?.history.size ?? 0) > 0;
  }
}
