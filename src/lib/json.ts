/**
 * Untrusted JSON is checked before it is parsed. `JSON.parse` itself copes with deep nesting,
 * but whatever walks the value afterwards (schema validation, `JSON.stringify` on fan-out)
 * recurses and throws RangeError at a few thousand levels, and a 1 MB body nested 200k deep
 * held Bun's loop for ~700 ms. One linear pass over the text, with no allocation, bounds the
 * nesting depth and finds `\u0000` escapes (PostgreSQL refuses NUL in text and jsonb, SQLite
 * keeps it; refusing it everywhere gives both stores the same answer).
 */

/** What is wrong with a JSON text, or null when it is within bounds. */
export type JsonBoundViolation = 'too_deep' | 'nul' | null;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Scan `text` once: nesting deeper than `maxDepth`, or (with `refuseNul`) a string holding
 * U+0000. Malformed JSON is left for `JSON.parse` to report.
 */
export function checkJsonBounds(text: string, maxDepth: number, refuseNul: boolean): JsonBoundViolation {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) {
        // An escape: `\u0000` is NUL; any other escape is skipped whole so `\"` stays inside.
        if (refuseNul && text.startsWith('u0000', i + 1)) return 'nul';
        i++;
      } else if (c === QUOTE) inString = false;
      else if (c === 0 && refuseNul) return 'nul';
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return 'too_deep';
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return null;
}
