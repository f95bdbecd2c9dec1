/**
 * The mail module without a network: what each mode does with a message (the development
 * log holds the link; "off" does no work at all), and Outgoing's bounds: concurrency, a
 * full queue drops, drain waits, and a failed send is logged by kind without the message.
 * Real SMTP is proved in test/e2e/accounts.test.ts.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createMailer, Outgoing, type Mailer } from '../../src/mail/index.js';
import { resetPasswordMail, verifyEmailMail } from '../../src/mail/messages.js';
import { createLogger } from '../../src/observability/logger.js';

function capture() {
  const lines: Array<Record<string, any>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: createLogger('info', {}, stream), lines };
}
const flush = () => new Promise((r) => setImmediate(r));

const opts = { smtpUrl: undefined, mailFrom: undefined, smtpTimeoutMs: 1000 };

test('development (log mode): the message, link included, is one info line', async () => {
  const { log, lines } = capture();
  const m = createMailer({ ...opts, mailMode: 'log' }, log);
  await m.send(verifyEmailMail({ appUrl: 'https://app.example.com' }, 'a@example.com', 'TOKEN123', 86_400));
  await flush();
  const line = lines.find((l) => l.mail);
  assert.ok(line, 'the mail was logged');
  assert.equal(line.mail.to, 'a@example.com');
  assert.ok(line.mail.text.includes('https://app.example.com/verify-email?token=TOKEN123'));
});

test('production without SMTP (off): a warning at boot, and queued jobs never run', async () => {
  const { log, lines } = capture();
  const m = createMailer({ ...opts, mailMode: 'off' }, log);
  await flush();
  assert.ok(lines.some((l) => l.level === 'warn' && /SMTP_URL unset/.test(l.msg)));
  let ran = false;
  const out = new Outgoing(m, log);
  out.enqueue('verify_email', async () => {
    ran = true;
    return null;
  });
  await out.drain();
  assert.equal(ran, false, 'no token is issued for a mail that cannot leave');
});

test('Outgoing runs at most `concurrency` jobs, drops beyond its queue, and drain waits for the rest', async () => {
  const { log, lines } = capture();
  let running = 0;
  let peak = 0;
  const sent: string[] = [];
  const gate: Array<() => void> = [];
  const mailer: Mailer = {
    delivers: true,
    send: async (msg) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((r) => gate.push(r));
      running--;
      sent.push(msg.to);
    },
    close: () => undefined,
  };
  const out = new Outgoing(mailer, log, 2, 3);
  for (let i = 0; i < 6; i++) out.enqueue('t', async () => ({ to: `${i}@x`, subject: 's', text: 't' }));
  assert.equal(out.stats.dropped, 1, '2 running + 3 queued; the sixth is dropped');
  let drained = false;
  const d = out.drain().then(() => (drained = true));
  for (let i = 0; i < 100 && sent.length < 5; i++) {
    await flush();
    gate.shift()?.();
  }
  await d;
  assert.equal(drained, true);
  assert.equal(peak, 2);
  assert.deepEqual(sent.sort(), ['0@x', '1@x', '2@x', '3@x', '4@x']);
  await flush();
  assert.ok(lines.some((l) => l.level === 'warn' && l.kind === 't' && /dropped/.test(l.msg)));
});

test('a failed send is logged with its kind, never its message or link', async () => {
  const { log, lines } = capture();
  const out = new Outgoing({ delivers: true, send: async () => Promise.reject(new Error('550 mailbox unavailable')), close: () => undefined }, log);
  out.enqueue('reset_password', async () => resetPasswordMail({ appUrl: 'https://app.example.com' }, 'a@example.com', 'SECRET-TOKEN', 1800));
  await out.drain();
  await flush();
  assert.equal(out.stats.failed, 1);
  const line = lines.find((l) => l.msg === 'mail not sent');
  assert.ok(line);
  assert.equal(line.kind, 'reset_password');
  assert.ok(!JSON.stringify(lines).includes('SECRET-TOKEN'));
});

test('mails carry the token as a code, and as a link when APP_URL is set', () => {
  const withLink = resetPasswordMail({ appUrl: 'https://app.example.com' }, 'a@example.com', 'TKN', 1800);
  assert.ok(withLink.text.includes('https://app.example.com/reset-password?token=TKN'));
  assert.ok(withLink.text.includes('code: TKN'));
  assert.ok(withLink.text.includes('30 minutes'));
  const codeOnly = resetPasswordMail({ appUrl: undefined }, 'a@example.com', 'TKN', 1800);
  assert.ok(!codeOnly.text.includes('http'));
  assert.ok(codeOnly.text.includes('code: TKN'));
});
