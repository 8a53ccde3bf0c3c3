// `medstream check` as an operator runs it: a real child process against the bundled samples, a
// real S3 server (s3rver) and a closed port; each failure with its exit code and diagnosis.
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';

const SAMPLES = path.resolve(fileURLToPath(new URL('../../samples', import.meta.url)));

const medstream = (args: string[], env: Record<string, string> = {}) =>
  runMedstream(args, { env: { ...process.env, ...env }, timeoutMs: 100_000 });

/** Credentials for s3rver, and nothing from the developer's own AWS setup. */
function awsEnv(accessKeyId = 'S3RVER', secretAccessKey = 'S3RVER'): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: accessKeyId,
    AWS_SECRET_ACCESS_KEY: secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_PROFILE: '',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('medstream check', { timeout: 120_000 }, () => {
  let s3: TestS3Server;

  beforeAll(async () => {
    s3 = await startS3Server();
    await s3.createBucket('slides');
    await s3.upload('slides', 'cases/CMU-1-Small-Region.svs', path.join(SAMPLES, 'CMU-1-Small-Region.svs'));
  });
  afterAll(async () => {
    await s3?.close();
  });

  it('opens a bundled sample, reads and decodes a tile, and says what it found', async () => {
    const run = await medstream(['check', '--test-slide', 'CMU-1-Small-Region.svs']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/open CMU-1-Small-Region\.svs: ok, 1938955 bytes/);
    expect(run.stdout).toMatch(/slide: format aperio, vendor aperio, 2220x2967, \d+ levels/);
    expect(run.stdout).toMatch(/level 0: 2220x2967, downsample 1\.000, tiles 240x240 \(10x13\), JPEG/);
    expect(run.stdout).toMatch(
      /tile: level 0 \(\d+, \d+\): \d+ bytes JPEG, read in [\d.]+ ms; decoded 240x240x3 in [\d.]+ ms/,
    );
    expect(run.stdout).toMatch(/check: ok\n$/);
  });

  it('without --test-slide, tests the first slide it lists', async () => {
    const run = await medstream(['check', SAMPLES]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/testing the first slide listed: \S+/);
    expect(run.stdout).toMatch(/tile: level \d+/);
  });

  it('works against S3 (s3rver) with the right credentials', async () => {
    const run = await medstream(
      [
        'check',
        's3://slides/cases',
        '--s3-endpoint',
        s3.endpoint,
        '--s3-force-path-style',
        '--list-slides',
        '--test-slide',
        'CMU-1-Small-Region.svs',
      ],
      awsEnv(),
    );
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/CMU-1-Small-Region\.svs\t1938955 bytes/);
    expect(run.stdout).toMatch(/tile: level 0 .* decoded 240x240x3/);
  });

  it('a missing bucket: exit 1, "bucket missing"', async () => {
    const run = await medstream(
      ['check', 's3://no-such-bucket', '--s3-endpoint', s3.endpoint, '--s3-force-path-style'],
      awsEnv(),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/listing: FAILED — not_found: .*no-such-bucket/);
    expect(run.stdout).toMatch(/diagnosis: bucket missing/);
  });

  it('wrong credentials: exit 1, "access denied"', async () => {
    const run = await medstream(
      ['check', 's3://slides', '--s3-endpoint', s3.endpoint, '--s3-force-path-style'],
      awsEnv('NOT-A-KEY', 'not-the-secret'),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/listing: FAILED — access_denied/);
    expect(run.stdout).toMatch(/diagnosis: access denied: the store does not know this access key/);
  });

  it('an unreachable endpoint (a closed port): exit 1, "endpoint unreachable"', async () => {
    const port = await closedPort();
    const run = await medstream(
      [
        'check',
        's3://slides',
        '--s3-endpoint',
        `http://127.0.0.1:${port}`,
        '--s3-force-path-style',
        '--storage-max-attempts',
        '2',
      ],
      awsEnv(),
    );
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/listing: FAILED — connection_error/);
    expect(run.stdout).toMatch(
      new RegExp(`diagnosis: endpoint unreachable: could not connect to http://127\\.0\\.0\\.1:${port}`),
    );
  });

  it('an unsupported format: exit 1, "unsupported format"', async () => {
    const run = await medstream(['check', fixture('wsi/openslide'), '--test-slide', 'unopenable.tiff']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/open unopenable\.tiff: FAILED — unsupported_format/);
    expect(run.stdout).toMatch(/diagnosis: unsupported format: .*MedStream reads Aperio SVS/);
  });

  it('a missing object: exit 1, "not found"', async () => {
    const run = await medstream(['check', '--test-slide', 'missing.svs']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/open missing\.svs: FAILED — not_found/);
    expect(run.stdout).toMatch(/diagnosis: not found/);
  });

  describe('with --redis-url', () => {
    let redis: TestRedis;
    beforeAll(async () => {
      redis = await startRedis();
    });
    afterAll(async () => {
      await redis?.stop();
    });
    const checkWith = (url: string) =>
      medstream(['check', '--test-slide', 'CMU-1-Small-Region.svs', '--redis-url', url]);

    it("Redis' defaults (noeviction, no maxmemory): ok, with a warning for each", async () => {
      const run = await checkWith(redis.url);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toMatch(
        /redis: redis:\/\/127\.0\.0\.1:\d+\/0 ok, Redis \d+\.\d+\.\d+, round trip [\d.]+ ms, maxmemory unbounded, policy noeviction/,
      );
      expect(run.stdout).toMatch(/redis: warning — maxmemory-policy noeviction: .* set allkeys-lru/);
      expect(run.stdout).toMatch(/redis: warning — no maxmemory/);
      expect(run.stdout).toMatch(/check: ok\n$/);
    });

    it('the recommended settings: ok, no warning, and the probe key is gone', async () => {
      const direct = new Redis(redis.url);
      try {
        await direct.config('SET', 'maxmemory', '64mb');
        await direct.config('SET', 'maxmemory-policy', 'allkeys-lru');
        const run = await checkWith(redis.url);
        expect(run.code).toBe(0);
        expect(run.stdout).toMatch(/redis: .* ok, .*maxmemory 64 MiB, policy allkeys-lru\n/);
        expect(run.stdout).not.toMatch(/warning/);
        expect(await direct.keys('medstream:v1:check:*')).toEqual([]);
      } finally {
        await direct.quit();
      }
    });

    it('Redis unreachable: exit 1, a diagnosis, the storage checks still run', async () => {
      const run = await checkWith(`redis://:secret@127.0.0.1:${await closedPort()}/0`);
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/tile: level 0/);
      expect(run.stdout).toMatch(/redis: FAILED — /);
      expect(run.stdout).toMatch(/diagnosis: Redis unreachable at redis:\/\/:\*\*\*@127\.0\.0\.1:\d+\/0/);
      expect(run.stdout).not.toMatch(/secret|check: ok/);
    });

    it('a wrong password: exit 1, "refused the credentials"', async () => {
      const direct = new Redis(redis.url);
      try {
        await direct.config('SET', 'requirepass', 'right');
        const run = await checkWith(redis.url.replace('redis://', 'redis://:wrong@'));
        expect(run.code).toBe(1);
        expect(run.stdout).toMatch(/redis: FAILED — WRONGPASS/);
        expect(run.stdout).toMatch(/diagnosis: Redis refused the credentials/);
      } finally {
        await direct.config('SET', 'requirepass', '');
        await direct.quit();
      }
    });
  });
});
