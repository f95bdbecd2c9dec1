/**
 * Every failure the client reports is a OneboxError with a stable `code`: the server's error
 * code (docs/errors.md: `publish_forbidden`, `forbidden_topic`, …) or one of the client's own:
 * `timeout` (no answer before the deadline), `closed` (the client was closed),
 * `handler_failed` (the app's message handler threw).
 */
export class OneboxError extends Error {
  override readonly name = 'OneboxError';

  constructor(
    readonly code: string,
    message: string,
    /** The topic, when the error is about one. */
    readonly topic?: string,
  ) {
    super(message);
  }
}
