#!/usr/bin/env node
// A tiny static server for the chat example: this folder at /, the SDK's ESM build
// (client/dist, made by `npm run build`) at /client/, and /config.json naming the onebox API.
// Any static host does the same; onebox runs on its own origin (set CORS_ORIGINS there).
//
//   node examples/chat/serve.mjs [--port 8081] [--host 127.0.0.1] [--api http://127.0.0.1:8080]
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '8081' },
    host: { type: 'string', default: '127.0.0.1' },
    api: { type: 'string', default: 'http://127.0.0.1:8080' },
  },
});
const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../client/dist/', import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.png': 'image/png',
};

/** The file under `root` that `path` names, or null when it escapes `root` or is not a file. */
function fileIn(root, path) {
  const full = normalize(join(root, path));
  if (!full.startsWith(root.endsWith(sep) ? root : root + sep)) return null;
  try {
    return statSync(full).isFile() ? full : null;
  } catch {
    return null;
  }
}

const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  if (path === '/config.json') {
    res.writeHead(200, { 'content-type': TYPES['.json'], 'cache-control': 'no-store' });
    res.end(JSON.stringify({ api: opts.api }));
    return;
  }
  const file = path.startsWith('/client/') ? fileIn(CLIENT, path.slice('/client/'.length)) : fileIn(HERE, path === '/' ? 'index.html' : path.slice(1));
  if (!file || req.method !== 'GET' || file.endsWith('.mjs')) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
    return;
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
  createReadStream(file).pipe(res);
});

server.listen(Number(opts.port), opts.host, () => {
  const { port } = server.address();
  console.log(`chat example on http://${opts.host}:${port}/ (onebox API ${opts.api})`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
