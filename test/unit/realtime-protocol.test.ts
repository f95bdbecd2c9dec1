import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameError, isValidTopic, parseFrame, type ClientFrame } from '../../src/realtime/protocol.js';

const DEPTH = 4;

/** The error code parseFrame answers, or 'ok'. */
const codeOf = (text: string, maxDepth = DEPTH) => {
  const r = parseFrame(text, maxDepth);
  return r instanceof FrameError ? r.code : 'ok';
};

const pub = (data: string) => `{"op":"pub","topic":"t","data":${data}}`;

test('arrays nested to maxDepth pass; one level more is json_too_deep', () => {
  // The frame object is level 1.
  assert.equal(codeOf(pub('[[[1]]]')), 'ok');
  assert.equal(codeOf(pub('[[[[1]]]]')), 'json_too_deep');
});

test('objects nested to maxDepth pass; one level more is json_too_deep', () => {
  assert.equal(codeOf(pub('{"a":{"b":{}}}')), 'ok');
  assert.equal(codeOf(pub('{"a":{"b":{"c":{}}}}')), 'json_too_deep');
  assert.equal(codeOf(pub('{"a":[{"b":[]}]}')), 'json_too_deep', 'arrays and objects count alike');
});

test('depth is the deepest point, not the number of containers', () => {
  assert.equal(codeOf(pub(`[${Array(200).fill('[[1]]').join(',')}]`)), 'ok');
});

test('brackets inside strings do not count toward the depth', () => {
  assert.equal(codeOf(pub('"[[[[[[{{{{{{"')), 'ok');
  assert.equal(codeOf(pub('["{{{{", ["[[[[", {"k[[[[": "]]]]"}]]')), 'ok');
});

test('an escaped quote does not end a string, an escaped backslash does', () => {
  assert.equal(codeOf(pub(String.raw`"\"[[[[[[\""`)), 'ok', 'the brackets stay inside the string');
  // `"\\"` is a complete string: the brackets after it are structure and count.
  assert.equal(codeOf(pub(String.raw`["\\", [[[1]]]]`)), 'json_too_deep');
  assert.equal(codeOf(pub(String.raw`["\\", [[1]]]`)), 'ok');
});

test('the depth bound holds at the configured value', () => {
  const nested = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  for (const max of [2, 32, 100]) {
    assert.equal(codeOf(pub(nested(max - 1)), max), 'ok', `max ${max}`);
    assert.equal(codeOf(pub(nested(max)), max), 'json_too_deep', `max ${max}`);
  }
});

test('text that is not JSON is bad_json', () => {
  for (const text of ['', '{', 'op=ping', "{'op':'ping'}", '{"op":"ping",}', '{"op":"ping"} x']) {
    assert.equal(codeOf(text), 'bad_json', JSON.stringify(text));
  }
});

test('JSON that is not an object is bad_frame', () => {
  for (const text of ['[]', '[{"op":"ping"}]', '1', '"ping"', 'null', 'true']) assert.equal(codeOf(text), 'bad_frame', text);
});

test('a subscription token that is not a string of 1-4096 characters is bad_frame, on sub and history', () => {
  for (const token of ['1', 'null', '""', '{}', JSON.stringify('t'.repeat(4097))]) {
    assert.equal(codeOf(`{"op":"sub","topic":"room:1","token":${token}}`), 'bad_frame', token.slice(0, 10));
    assert.equal(codeOf(`{"op":"history","topic":"room:1","since":{"offset":0,"epoch":"e"},"token":${token}}`), 'bad_frame', token.slice(0, 10));
  }
});

test('an id that is neither a string nor a number is bad_frame', () => {
  for (const id of ['null', 'true', '{}', '[1]']) assert.equal(codeOf(`{"op":"ping","id":${id}}`), 'bad_frame', id);
});

test('a missing or unknown op is unknown_op, with the id echoed', () => {
  for (const text of ['{"id":7}', '{"op":"PING","id":7}', '{"op":"publish","topic":"t","id":7}', '{"op":7,"id":7}']) {
    const r = parseFrame(text, DEPTH);
    assert.ok(r instanceof FrameError, text);
    assert.equal(r.code, 'unknown_op', text);
    assert.equal(r.id, 7, text);
  }
});

test('sub, unsub and pub without a valid topic are invalid_topic, with the id echoed', () => {
  const bad = ['', '-a', '.a', 'a b', 'a/b', 'é', 'a'.repeat(101)];
  for (const op of ['sub', 'unsub', 'pub']) {
    for (const topic of [...bad.map((t) => JSON.stringify(t)), '1', 'null', '["a"]']) {
      const r = parseFrame(`{"op":"${op}","topic":${topic},"id":"x"}`, DEPTH);
      assert.ok(r instanceof FrameError, `${op} ${topic}`);
      assert.equal(r.code, 'invalid_topic', `${op} ${topic}`);
      assert.equal(r.id, 'x');
    }
    const missing = parseFrame(`{"op":"${op}","id":"x"}`, DEPTH);
    assert.ok(missing instanceof FrameError && missing.code === 'invalid_topic');
  }
});

test('topic names: 1 to 100 of [A-Za-z0-9_.:-], starting with a letter or digit', () => {
  for (const t of ['a', '0', 'chat.room-1', 'user:alice', 'A_b:c.d-e', 'a'.repeat(100)]) assert.equal(isValidTopic(t), true, t);
  for (const t of ['', '_a', ':a', 'a'.repeat(101), 'a\n', 'a*', 1, null]) assert.equal(isValidTopic(t), false, String(t));
});

test('well-formed frames parse with their id, a string or a number, echoed', () => {
  const cases: Array<[string, ClientFrame]> = [
    ['{"op":"ping"}', { op: 'ping', id: undefined }],
    ['{"op":"ping","id":1}', { op: 'ping', id: 1 }],
    ['{"op":"sub","topic":"t","id":"a"}', { op: 'sub', topic: 't', id: 'a', since: undefined, token: undefined }],
    ['{"op":"sub","topic":"room:1","token":"a.b.c"}', { op: 'sub', topic: 'room:1', id: undefined, since: undefined, token: 'a.b.c' }],
    ['{"op":"unsub","topic":"t","id":0}', { op: 'unsub', topic: 't', id: 0 }],
    ['{"op":"pub","topic":"t","data":{"x":[1]},"id":2}', { op: 'pub', topic: 't', data: { x: [1] }, id: 2, key: undefined }],
    ['{"op":"pub","topic":"t"}', { op: 'pub', topic: 't', data: null, id: undefined, key: undefined }],
  ];
  for (const [text, frame] of cases) assert.deepEqual(parseFrame(text, DEPTH), frame, text);
});
