/** NIST SP 800-63B password rules (src/app/auth/password-policy.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkNewPassword, commonPasswords, NewPassword } from '../../src/app/auth/password-policy.js';

const refused = async (pw: string, email?: string) =>
  checkNewPassword(pw, email).then(
    () => false,
    (e: { code?: string }) => e.code === 'password_too_common',
  );

test('the shipped list holds the 17,950 common passwords of 8+ characters, matched ignoring case', async () => {
  assert.equal((await commonPasswords()).size, 17_950);
  for (const pw of ['password', 'PASSWORD', 'Password1', '12345678', 'iloveyou', 'trustno1', 'qwertyuiop']) assert.equal(await refused(pw), true, pw);
  for (const pw of ['correct horse battery', 'zebrakettle', 'Tr0ub4dor&3x']) assert.equal(await refused(pw), false, pw);
});

test("the account's own email is refused as a password", async () => {
  assert.equal(await refused('Me@Example.com', 'me@example.com'), true);
  assert.equal(await refused('me@example.co', 'me@example.com'), false);
});

test('length counts Unicode characters after NFKC: 8 to 256, no composition rule', () => {
  assert.equal(NewPassword.safeParse('abcdefg').success, false, '7 characters');
  assert.equal(NewPassword.safeParse('abcdefgh').success, true, '8 lower-case letters, nothing else required');
  assert.equal(NewPassword.safeParse('🦊'.repeat(256)).success, true, '256 characters of 2 UTF-16 units each');
  assert.equal(NewPassword.safeParse('🦊'.repeat(257)).success, false);
  assert.equal(NewPassword.safeParse('ﬃ'.repeat(3)).success, true, 'a ligature is 3 characters once NFKC-normalised (9 in all)');
});
