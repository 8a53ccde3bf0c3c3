import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { envName, helpText, OPTIONS, parseConfig, parseDuration, parseSize } from '../../src/cli/config.js';
import { ConfigError } from '../../src/errors.js';

describe('configuration schema', () => {
  it('applies defaults', () => {
    const { config } = parseConfig([], {});
    expect(config).toMatchObject({ host: '0.0.0.0', port: 3000, logLevel: 'info', s3ForcePathStyle: false });
    expect(config.storage).toBeUndefined();
    expect(config.cacheBlocksBytes).toBe(64 * 1024 * 1024);
    expect(config.blockSizeBytes).toBe(64 * 1024);
    expect(config.storageDeadlineMs).toBe(20_000);
  });

  it('reads every option from its MEDSTREAM_* variable, and flags win over the environment', () => {
    const env = {
      MEDSTREAM_PORT: '8080',
      MEDSTREAM_S3_FORCE_PATH_STYLE: 'true',
      MEDSTREAM_CACHE_BLOCKS: '1GB',
      MEDSTREAM_STORAGE_DEADLINE: '1.5s',
      MEDSTREAM_STORAGE: 's3://bucket/prefix',
    };
    const fromEnv = parseConfig([], env).config;
    expect(fromEnv).toMatchObject({ port: 8080, s3ForcePathStyle: true, storage: 's3://bucket/prefix' });
    expect(fromEnv.cacheBlocksBytes).toBe(1024 ** 3);
    expect(fromEnv.storageDeadlineMs).toBe(1500);
    const fromFlags = parseConfig(['--port', '9000', '--no-s3-force-path-style', '/data'], env).config;
    expect(fromFlags).toMatchObject({ port: 9000, s3ForcePathStyle: false, storage: '/data' });
  });

  it('every option has a flag and an environment variable in --help', () => {
    const help = helpText();
    for (const spec of OPTIONS) {
      expect(help).toContain(`--${spec.flag}`);
      expect(help).toContain(envName(spec.flag));
    }
  });

  it('docs/configuration.md documents every option', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    for (const spec of OPTIONS) {
      expect(doc).toContain(`\`--${spec.flag}\``);
      expect(doc).toContain(`\`${envName(spec.flag)}\``);
    }
  });

  it.each([
    [['--port', 'abc'], /--port: "abc" is not a port number/],
    [['--port', '70000'], /--port: "70000" is not a port number/],
    [['--log-level', 'loud'], /--log-level: "loud" is not one of fatal, error/],
    [['--cache-blocks', 'lots'], /--cache-blocks: "lots" is not a size/],
    [['--block-size', '3000'], /--block-size: "3000" is not a size in bytes of at least 4096/],
    [['--block-size', '12288'], /--block-size: 12288 is not a power of two/],
    [['--storage-deadline', 'soon'], /--storage-deadline: "soon" is not a duration/],
    [['--s3-endpoint', 'minio:9000'], /--s3-endpoint: "minio:9000" is not an http\(s\):\/\/ URL/],
    [['ftp://host/slides'], /unknown scheme 'ftp:'/],
    [['s3://'], /names no bucket/],
    [['s3:///prefix'], /names no bucket/],
    [['s3://Bad_Bucket/x'], /is not a valid bucket name/],
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['a', 'b'], /at most one storage URL/],
  ])('rejects %j with a clear message', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('names the environment variable when the bad value came from it', () => {
    expect(() => parseConfig([], { MEDSTREAM_PORT: 'abc' })).toThrow(
      /MEDSTREAM_PORT: "abc" is not a port number/,
    );
  });

  it('parses sizes and durations', () => {
    expect(parseSize('512MB')).toBe(512 * 1024 ** 2);
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('0')).toBe(0);
    expect(parseSize('1.5k')).toBe(1536);
    expect(parseSize('-1')).toBeUndefined();
    expect(parseSize('12 parsecs')).toBeUndefined();
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('100')).toBe(100);
    expect(parseDuration('1d')).toBeUndefined();
  });

  it('shared Redis cache: off by default, URL validated without echoing a password', () => {
    const off = parseConfig([], {}).config;
    expect(off.redisUrl).toBeUndefined();
    expect(off).toMatchObject({ redisTtlMs: 3_600_000, redisTimeoutMs: 50, redisCircuitCooldownMs: 5000 });
    for (const url of [
      'redis://redis:6379/0',
      'rediss://user:pw@cache.example.org:6380',
      'redis://127.0.0.1',
    ]) {
      expect(parseConfig([], { MEDSTREAM_REDIS_URL: url }).config.redisUrl).toBe(url);
    }
    expect(parseConfig(['--redis-ttl', '10m', '--redis-timeout', '20ms'], {}).config).toMatchObject({
      redisTtlMs: 600_000,
      redisTimeoutMs: 20,
    });
    for (const bad of ['http://redis:6379', 'redis:6379', 'redis://host/0/extra', 'redis://host?db=1']) {
      expect(() => parseConfig(['--redis-url', bad], {})).toThrow(/--redis-url: .* is not a redis:/);
    }
    expect(() => parseConfig(['--redis-url', 'http://u:secret@redis'], {})).toThrow(ConfigError);
    expect(() => parseConfig(['--redis-url', 'http://u:secret@redis'], {})).not.toThrow(/secret/);
    expect(() => parseConfig(['--redis-timeout', '0'], {})).toThrow(/--redis-timeout/);
  });
});
