/**
 * The seam of outgoing mail: `Mailer` sends one message. Implementations: SMTP through
 * nodemailer (smtp-mailer.ts), and the development log and "off" (index.ts, which chooses).
 */

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  /** False when mail goes nowhere (production without SMTP_URL): jobs are then skipped whole. */
  readonly delivers: boolean;
  /** Send one message; rejects when the server refuses it or a deadline passes. */
  send(m: MailMessage): Promise<void>;
  close(): void;
}
