// The bare Node.js ceiling of the `compare` suite (a reference, not a product path): a minimal
// node:http server that answers GET for a fixed set of URLs with bytes held in a Map, nothing
// else (no routing, logging, metrics, ETag). What the runtime's own HTTP stack does per request
// on this machine, to separate it from MedStream's per-request work.
//
//   node bare-node-server.mjs MANIFEST.json PORT WORKERS
// MANIFEST: {"<url>": "<file>"}; WORKERS > 1 forks that many node:cluster workers (the default,
// round-robin scheduling, as `medstream serve --workers N`).

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import process from 'node:process';

const [manifestPath, port, workers] = process.argv.slice(2);
const count = Number(workers ?? 1);

if (cluster.isPrimary && count > 1) {
  for (let i = 0; i < count; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  const bodies = new Map(Object.entries(manifest).map(([url, file]) => [url, readFileSync(file)]));
  const server = http.createServer((req, res) => {
    const body = bodies.get(req.url);
    if (body === undefined) {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 72_000;
  server.listen(Number(port), '127.0.0.1');
  process.on('SIGTERM', () => process.exit(0));
}
