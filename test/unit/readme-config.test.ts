/**
 * README.md's configuration table lists exactly the variables the config schema reads, with
 * the same defaults. A row is `| \`NAME\` | default | meaning |`; a row may name several
 * variables (`| \`A\`, \`B\` | 1, 2 | … |`), with one default for all of them or one per
 * name, comma-separated. A default is written as it would be set in the environment; `–`
 * stands for unset or empty. A variable without a default in the schema (computed at boot,
 * or set by systemd or the supervisor) is described in words (`2.5 × ping`) or `–`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { environmentVariables } from '../../src/config.js';
import { ROOT } from '../kit/server.js';

const NONE = '–';

/** The README's configuration rows: each variable with its default cell. */
function readmeTable(): Map<string, string> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Configuration\n'));
  assert.ok(section, 'README.md has a "## Configuration" section');
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\|\s*(`[A-Z][A-Z0-9_]*`(?:\s*,\s*`[A-Z][A-Z0-9_]*`)*)\s*\|([^|]*)\|/.exec(line);
    if (!m) continue;
    const names = [...m[1]!.matchAll(/`([A-Z0-9_]+)`/g)].map((n) => n[1]!);
    const cell = m[2]!.trim();
    const defaults = names.length > 1 && cell.includes(',') ? cell.split(',').map((d) => d.trim()) : names.map(() => cell);
    assert.equal(defaults.length, names.length, `README row ${names.join(', ')}: one default for all, or one per variable`);
    names.forEach((name, i) => {
      assert.ok(!rows.has(name), `README lists ${name} twice`);
      rows.set(name, defaults[i]!);
    });
  }
  return rows;
}

test('the README configuration table lists exactly the schema variables', () => {
  const documented = new Set(readmeTable().keys());
  const read = new Set(environmentVariables().map((v) => v.name));
  assert.deepEqual(
    { missingFromReadme: [...read].filter((n) => !documented.has(n)), notReadByConfig: [...documented].filter((n) => !read.has(n)) },
    { missingFromReadme: [], notReadByConfig: [] },
  );
});

test('the README configuration table gives each variable the schema default', () => {
  const rows = readmeTable();
  const wrong: string[] = [];
  for (const { name, fallback } of environmentVariables()) {
    const cell = rows.get(name);
    if (cell === undefined) continue; // reported by the test above
    if (fallback === undefined) {
      if (cell !== NONE && !/\s/.test(cell)) wrong.push(`${name}: no default in the schema, README says "${cell}" (write ${NONE} or describe it in words)`);
    } else if (cell !== (fallback === '' ? NONE : fallback)) {
      wrong.push(`${name}: schema default "${fallback}", README says "${cell}"`);
    }
  }
  assert.deepEqual(wrong, []);
});
