/**
 * SMTP through nodemailer, loaded only when the first mail goes out. One connection per
 * message (mail is rare here; `Outgoing` bounds how many run at once), each step under the
 * SMTP_TIMEOUT_MS deadline. nodemailer's own logger stays off: with `debug` it would write
 * the message, and so the links, to the log.
 */
import { createTransport } from 'nodemailer';
import type { Mailer } from './mailer.js';

/**
 * @param url SMTP_URL (`smtp://` STARTTLS when offered, `smtps://` TLS).
 * @param from MAIL_FROM.
 * @param timeoutMs deadline of the connection, the greeting and each command.
 */
export function createSmtpMailer(url: string, from: string, timeoutMs: number): Mailer {
  const transport = createTransport({
    url,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    dnsTimeout: timeoutMs,
    logger: false,
    debug: false,
  });
  return {
    delivers: true,
    async send(m) {
      await transport.sendMail({ from, to: m.to, subject: m.subject, text: m.text });
    },
    close: () => transport.close(),
  };
}
