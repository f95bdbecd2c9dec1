/**
 * Namespace rules: a topic's namespace is the part before its first `:` (`room:1` → `room`).
 * Each namespace says how much history its topics keep and whether a `since` is honoured.
 * The rules come from built-in defaults, replaced namespace by namespace by the validated
 * JSON file CHANNELS_FILE names: `{"namespaces":{"room":{"history":{"size":100,"ttlS":3600},
 * "recover":true}}}`; the key `*` sets the rules of every namespace not listed.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../config.js';

export interface NamespaceRules {
  /** Messages kept per topic (0: fire-and-forget, no store write, no offset) and their age bound. */
  history: { size: number; ttlS: number };
  /** Whether `sub` honours `since` (replay of what was missed). */
  recover: boolean;
}

const Rules = z.strictObject({
  history: z.strictObject({
    size: z.number().int().min(0).max(1_000_000),
    ttlS: z.number().int().min(0).max(365 * 86_400),
  }),
  recover: z.boolean().default(true),
});

const File = z.strictObject({
  namespaces: z.record(z.string().regex(/^(\*|[A-Za-z0-9_.-]{0,100})$/, 'a namespace is the part of a topic before its first ":"'), Rules),
});

/** The built-in rules: users' channels keep 500 messages for 72 h, the benchmark's none. */
export const DEFAULT_NAMESPACES: Readonly<Record<string, NamespaceRules>> = {
  user: { history: { size: 500, ttlS: 72 * 3600 }, recover: true },
  bench: { history: { size: 0, ttlS: 0 }, recover: false },
  '*': { history: { size: 100, ttlS: 600 }, recover: true },
};

export class Channels {
  private readonly byName: Map<string, NamespaceRules>;
  private readonly fallback: NamespaceRules;

  constructor(namespaces: Readonly<Record<string, NamespaceRules>> = DEFAULT_NAMESPACES) {
    const all = { ...DEFAULT_NAMESPACES, ...namespaces };
    this.byName = new Map(Object.entries(all).filter(([name]) => name !== '*'));
    this.fallback = all['*']!;
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
      const lines = r.error.issues.map((i) => `  CHANNELS_FILE ${i.path.join('.')}: ${i.message}`);
      throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
    }
    return new Channels(r.data.namespaces);
  }

  /** The rules of a topic's namespace. */
  rules(topic: string): NamespaceRules {
    const colon = topic.indexOf(':');
    return this.byName.get(colon < 0 ? '' : topic.slice(0, colon)) ?? this.fallback;
  }

  /** True when the topic's messages are committed to the log with an offset. */
  durable(topic: string): boolean {
    return this.rules(topic).history.size > 0;
  }
}
