// A real S3-compatible server for tests: s3rver on 127.0.0.1 with a fresh temporary directory,
// behind a counting HTTP front so tests can assert how many requests actually reached the store
// (e.g. "a hostile key never produced a request"). Credentials are s3rver's fixed S3RVER/S3RVER.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

/** s3rver ships no type declarations; this is the part of its API we use. */
interface S3rverInstance {
  callback(): http.RequestListener;
  reset(): void;
  logger: { close(): void; exceptions: { unhandle(): void } };
}
type S3rverConstructor = new (options: {
  silent: boolean;
  directory: string;
  resetOnClose?: boolean;
  vhostBuckets?: boolean;
}) => S3rverInstance;

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverConstructor;
const nodeCrypto = require('node:crypto') as typeof import('node:crypto');

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** One request as the server received it. */
export interface S3RequestLogEntry {
  method: string;
  /** Path and query, e.g. `/bucket/key?x-id=GetObject`. */
  url: string;
  range?: string;
  ifMatch?: string;
}

export interface TestS3Server {
  /** `http://127.0.0.1:<port>`, for `endpoint` with `forcePathStyle: true`. */
  endpoint: string;
  port: number;
  /** A client talking straight to the server (not through any proxy), for setting up data. */
  client: S3Client;
  /** Every request that reached the server, in arrival order (setup requests included). */
  requestLog: S3RequestLogEntry[];
  createBucket(name: string): Promise<void>;
  /** Uploads bytes, or the contents of a file when given a path. */
  upload(bucket: string, key: string, body: Uint8Array | string): Promise<void>;
  /**
   * The flags a MedStream server needs to read from this server (or from a proxy in front of it
   * at `endpoint`). Puts s3rver's credentials in the environment, where the AWS chain finds them.
   */
  medstreamFlags(endpoint?: string): string[];
  /** Lengths of the range GETs that reached the server from `requestLog[from]` on. */
  rangeReadsSince(from: number): number[];
  close(): Promise<void>;
}

export async function startS3Server(): Promise<TestS3Server> {
  routeSingleDesThroughTripleDes();
  const directory = await mkdtemp(path.join(os.tmpdir(), 'medstream-s3rver-'));
  // vhostBuckets off: every request is path-style, as our S3Storage sends it with forcePathStyle.
  const s3rver = new S3rver({ silent: true, directory, vhostBuckets: false });
  const handle = s3rver.callback();
  const requestLog: S3RequestLogEntry[] = [];
  const server = http.createServer((req, res) => {
    requestLog.push({
      method: req.method ?? '',
      url: req.url ?? '',
      ...(req.headers.range === undefined ? {} : { range: req.headers.range }),
      ...(req.headers['if-match'] === undefined ? {} : { ifMatch: req.headers['if-match'] }),
    });
    handle(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    // s3rver predates flexible checksums (aws-chunked uploads with trailers): send plain bodies.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });

  return {
    endpoint,
    port,
    client,
    requestLog,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async upload(bucket, key, body) {
      const bytes = typeof body === 'string' ? await readFile(body) : body;
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
    },
    medstreamFlags(via = endpoint) {
      Object.assign(process.env, {
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      });
      return ['--s3-endpoint', via, '--s3-force-path-style', '--s3-region', 'us-east-1'];
    },
    rangeReadsSince(from) {
      return requestLog
        .slice(from)
        .filter((r) => r.method === 'GET' && r.range)
        .map((r) => {
          const [, a, b] = /bytes=(\d+)-(\d+)/.exec(r.range!)!;
          return Number(b) - Number(a) + 1;
        });
    },
    async close() {
      client.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      // s3rver.listen() would do this on 'close'; we run our own server, so we do it.
      s3rver.logger.exceptions.unhandle();
      s3rver.logger.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * s3rver encrypts ListObjectsV2 continuation tokens with single DES (`des`, i.e. DES-CBC), which
 * OpenSSL 3 (Node >= 17) only has in its legacy provider, so every truncated listing fails with
 * InternalError. Triple DES in EDE mode with K1 = K2 is single DES (E_K(D_K(E_K(x))) = E_K(x)),
 * so `des-ede-cbc` with the key doubled yields byte-identical tokens. Only the name `des`, which
 * cannot work in this process anyway, is rerouted; this worker process only.
 */
function routeSingleDesThroughTripleDes(): void {
  if (nodeCrypto.getCiphers().includes('des') || desRerouted) return;
  desRerouted = true;
  type CipherFactory = (algorithm: string, key: Buffer, iv: Buffer | null, options?: unknown) => unknown;
  // Overloaded builtins: reassigning them needs a plain signature.
  const factories = nodeCrypto as unknown as Record<'createCipheriv' | 'createDecipheriv', CipherFactory>;
  for (const name of ['createCipheriv', 'createDecipheriv'] as const) {
    const original = factories[name];
    factories[name] = (algorithm, key, iv, options) =>
      algorithm === 'des'
        ? original.call(nodeCrypto, 'des-ede-cbc', Buffer.concat([key, key]), iv, options)
        : original.call(nodeCrypto, algorithm, key, iv, options);
  }
}
let desRerouted = false;
