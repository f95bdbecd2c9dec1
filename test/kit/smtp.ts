/**
 * The tests' mail server: a separate process (smtp-server.ts) that the server under test
 * sends to over loopback SMTP. Every message it receives is kept here, decoded (headers,
 * quoted-printable text body), for the test to read; `waitFor` waits for one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.js';

export interface ReceivedMail {
  to: string[];
  subject: string;
  /** The decoded text body. */
  text: string;
  raw: string;
}

export interface SmtpServer {
  /** `smtp://127.0.0.1:<port>` for SMTP_URL. */
  url: string;
  /** Every message received so far. */
  mails: ReceivedMail[];
  /** The first message (past or future) to `address` that matches; fails after `timeoutMs`. */
  waitFor(address: string, pred?: (m: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  stop(): Promise<void>;
}

/** Undo quoted-printable (RFC 2045 6.7): soft line breaks and `=XX` escapes. */
function decodeQuotedPrintable(s: string): string {
  const bytes = s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

function parse(raw: string, to: string[]): ReceivedMail {
  const split = raw.indexOf('\r\n\r\n');
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  const body = raw.slice(split + 4);
  const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head)?.[1]?.trim() ?? '';
  const encoding = header('Content-Transfer-Encoding').toLowerCase();
  const text =
    encoding === 'quoted-printable' ? decodeQuotedPrintable(body)
    : encoding === 'base64' ? Buffer.from(body, 'base64').toString('utf8')
    : body;
  return { to, subject: header('Subject'), text: text.replace(/\r\n/g, '\n'), raw };
}

/** The token in a mail: the `code:` it prints. */
export function tokenOf(mail: ReceivedMail): string {
  const m = /code: ([A-Za-z0-9_-]+)/.exec(mail.text);
  if (!m) throw new Error(`no code in the mail: ${mail.text}`);
  return m[1]!;
}

export async function startSmtp(): Promise<SmtpServer> {
  const script = fileURLToPath(new URL('./smtp-server.js', import.meta.url));
  const proc: ChildProcess = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const mails: ReceivedMail[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the SMTP server did not start within 10 s')), 10_000);
    proc.once('exit', (code) => reject(new Error(`the SMTP server exited (${code}) before listening`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { port?: number; to?: string[]; raw?: string };
      if (msg.port !== undefined) {
        clearTimeout(timer);
        resolve(msg.port);
      } else mails.push(parse(msg.raw!, msg.to!));
    });
  });
  return {
    url: `smtp://127.0.0.1:${port}`,
    mails,
    async waitFor(address, pred = () => true, timeoutMs = 10_000) {
      let found: ReceivedMail | undefined;
      await eventually(() => (found = mails.find((m) => m.to.includes(address) && pred(m))) !== undefined, {
        timeoutMs,
        what: `a mail to ${address}`,
      });
      return found!;
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
