/* global Response */
// The reference for bench/request-path/run.sh: a bare Bun.serve answering the same JSON as
// onebox's GET /healthz, with nothing else loaded.
globalThis.Bun.serve({ port: Number(process.env.PORT), hostname: '127.0.0.1', fetch: () => Response.json({ status: 'ok' }) });
