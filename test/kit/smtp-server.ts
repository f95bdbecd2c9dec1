/**
 * A real SMTP server process for the tests (the `smtp-server` package), started by
 * `startSmtp` in smtp.ts: it listens on 127.0.0.1 on a port the kernel picks, prints
 * `{"port":N}` once listening, then one JSON line `{"from","to","raw"}` per message received.
 * No STARTTLS (its certificate would be self-signed) and no AUTH needed, like a local relay.
 */
import { SMTPServer } from 'smtp-server';

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onData(stream, session, callback) {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const to = session.envelope.rcptTo.map((r) => r.address);
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : null;
      process.stdout.write(`${JSON.stringify({ from, to, raw: Buffer.concat(chunks).toString('utf8') })}\n`);
      callback();
    });
  },
});
server.listen(0, '127.0.0.1', () => {
  const address = server.server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
