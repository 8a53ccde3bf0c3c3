// The stores the benchmarks read from, run in a child process: s3rver, the fault proxy in front of
// it (which adds per-request latency to model a distant object store) and the HTTP range server.
// Keeping their CPU work (s3rver's XML and SigV4 checks, the proxy's forwarding) off the event loop
// being measured lets client and store each have a core of the 2, as a client and a real store would.
//
//   bench/stores.ts --fork + IPC--> this process: s3rver <- fault proxy (delay) ; range server
//
// Protocol: this process sends `{ ready: StoreEndpoints }` once, then answers each `StoreCommand`
// `{ id, ... }` with `{ id, result }` or `{ id, error }`.

import path from 'node:path';
import { startFaultProxy } from '../test/support/fault-proxy.js';
import { RangeServer } from '../test/support/range-server.js';
import { startS3Server } from '../test/support/s3-server.js';
import type { StoreCommand, StoreEndpoints } from './stores.js';

async function main(): Promise<void> {
  const [file, bucket] = process.argv.slice(2);
  if (file === undefined || bucket === undefined || process.send === undefined) {
    throw new Error('usage: forked by bench/stores.ts with <file> <bucket> as arguments');
  }
  const key = path.basename(file);
  const s3 = await startS3Server();
  await s3.createBucket(bucket);
  await s3.upload(bucket, key, file);
  const proxy = await startFaultProxy(s3.endpoint);
  const http = await RangeServer.start({ root: path.dirname(file) });

  const answer = async (command: StoreCommand): Promise<unknown> => {
    switch (command.op) {
      case 'latency':
        proxy.always(command.ms > 0 ? { fault: 'delay', ms: command.ms } : null);
        return null;
      case 'counts':
        return { s3: s3.requestLog.length, proxy: proxy.requestCount, http: http.requests.length };
      case 'close':
        await Promise.all([proxy.close(), http.close()]);
        await s3.close();
        return null;
    }
  };
  process.on('message', (command: StoreCommand) => {
    const reply = (message: object) =>
      process.send?.(message, undefined, {}, () => {
        // Once closed, nothing is left to keep this process alive: leaving the channel ends it.
        if (command.op === 'close') process.disconnect();
      });
    answer(command).then(
      (result) => reply({ id: command.id, result }),
      (e: unknown) => reply({ id: command.id, error: String(e) }),
    );
  });
  const ready: StoreEndpoints = { s3Direct: s3.endpoint, s3Proxied: proxy.url, http: http.url };
  process.send({ ready });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
