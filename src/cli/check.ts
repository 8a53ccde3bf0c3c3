// `medstream check <storage-url>`: verifies that the configured storage is reachable with the
// configured credentials, lists what is there, then opens one slide (--test-slide, else the
// first slide listed) the way the server does — same storage, block cache and range coalescing,
// same format detection — and reads and decodes one tile, printing each step, so an operator
// sees exactly which one fails and why. With --redis-url it also checks the shared cache:
// reachable, writable, and configured as docs/deploy.md recommends. Exit code 0 when everything
// worked, 1 when not.

import { createCodecs } from '../codecs/index.js';
import { Compression } from '../codecs/types.js';
import { MedStreamError } from '../errors.js';
import { openSlide } from '../formats/detect.js';
import type { Slide, SlideLevel } from '../formats/slide.js';
import { BlockCache } from '../io/block-cache.js';
import { CoalescerStats } from '../io/coalesce.js';
import { createReaderFactory } from '../io/reader.js';
import { createStorage } from '../storage/index.js';
import { inspectRedis, redactUrl } from '../tiles/shared-cache.js';
import type { Storage } from '../storage/types.js';
import type { Config } from './config.js';
import { retryPolicyOf } from './serve.js';

export interface CheckOptions {
  listSlides: boolean;
  testSlide?: string;
  /** Where to print (stdout by default; tests capture it). */
  out?: (line: string) => void;
}

/** Keys the slide listing shows (server/routes/slides.ts), to pick one to test. */
const SLIDE_EXTENSIONS = /\.(svs|tif|tiff|btf|tf8|ndpi|dcm|scn|bif|mrxs|vms|vmu|svslide)$/i;

const COMPRESSION_NAMES = new Map<number, string>(
  Object.entries(Compression).map(([name, code]) => [code, name]),
);

export async function runCheck(config: Config, options: CheckOptions): Promise<number> {
  const print = options.out ?? ((line: string) => process.stdout.write(line + '\n'));
  let storage: Storage;
  try {
    storage = await createStorage(config.storage, {
      s3Endpoint: config.s3Endpoint,
      s3Region: config.s3Region,
      s3ForcePathStyle: config.s3ForcePathStyle,
      retry: retryPolicyOf(config),
    });
  } catch (e) {
    if (e instanceof MedStreamError && e.code === 'config_error') throw e; // exit code 2
    report(print, 'storage', e, config);
    return 1;
  }
  print(`storage: ${storage.description} (${storage.kind})`);
  let code: number;
  try {
    code = await checkStorage(storage, config, options, print);
  } finally {
    await storage.close();
  }
  if (config.redisUrl !== undefined && !(await checkRedis(config.redisUrl, print))) code = 1;
  if (code === 0) print('check: ok');
  return code;
}

/** Prints what the shared cache is and how it is set up; false when it cannot be used. */
async function checkRedis(url: string, print: (line: string) => void): Promise<boolean> {
  const shown = redactUrl(url);
  try {
    const r = await inspectRedis(url, 2000);
    const memory = r.maxmemory > 0 ? `${Math.round(r.maxmemory / 2 ** 20)} MiB` : 'unbounded';
    print(
      `redis: ${shown} ok, Redis ${r.version}, round trip ${r.roundTripMs.toFixed(1)} ms, ` +
        `maxmemory ${memory}, policy ${r.policy}`,
    );
    if (!r.policy.startsWith('allkeys-')) {
      print(
        `redis: warning — maxmemory-policy ${r.policy}: when full, Redis refuses the cache's writes or keeps keys ` +
          'without a TTL (failures can open the circuit); set allkeys-lru (docs/deploy.md)',
      );
    }
    if (r.maxmemory === 0) {
      print(
        'redis: warning — no maxmemory: the cache grows until the host runs out of memory; set maxmemory',
      );
    }
    return true;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    print(`redis: FAILED — ${message}`);
    const auth = /NOAUTH|WRONGPASS|NOPERM/.test(message);
    print(
      auth
        ? 'diagnosis: Redis refused the credentials or the command (check the user:password in --redis-url and its ACL: GET, SET, DEL, HMGET, EVALSHA, INFO)'
        : `diagnosis: Redis unreachable at ${shown}: the server still serves tiles without it, but replicas share nothing (check --redis-url, DNS, firewalls, TLS: rediss://)`,
    );
    return false;
  }
}

async function checkStorage(
  storage: Storage,
  config: Config,
  options: CheckOptions,
  print: (line: string) => void,
): Promise<number> {
  let firstSlide: string | undefined;
  try {
    let cursor: string | undefined;
    let total = 0;
    do {
      const page = await storage.list({ cursor, limit: 1000 });
      total += page.objects.length;
      firstSlide ??= page.objects.find((o) => SLIDE_EXTENSIONS.test(o.key))?.key;
      if (options.listSlides) for (const o of page.objects) print(`  ${o.key}\t${o.size} bytes`);
      cursor = options.listSlides ? page.nextCursor : undefined;
      if (!options.listSlides && page.nextCursor)
        print(`listing: ok, first page ${page.objects.length} objects (more exist)`);
      else if (!cursor) print(`listing: ok, ${total} objects`);
    } while (cursor);
  } catch (e) {
    if (!(e instanceof MedStreamError) || e.code !== 'not_implemented') {
      report(print, 'listing', e, config);
      return 1;
    }
    print(`listing: not available (${e.message})`);
  }

  const id = options.testSlide ?? firstSlide;
  if (id === undefined) {
    print('slide: none found to test (give one with --test-slide <id>)');
    return 0;
  }
  if (options.testSlide === undefined) print(`testing the first slide listed: ${id}`);
  const step = `open ${id}`;
  const codecs = createCodecs();
  try {
    const source = await storage.open(id);
    print(`${step}: ok, ${source.size} bytes, identity ${source.identity}`);
    const length = Math.min(source.size, 64 * 1024);
    let started = performance.now();
    if (length > 0) await source.read(0, length);
    print(`read first ${length} bytes: ok in ${ms(started)}`);

    // The same wrappers serve.ts builds: block cache for metadata, coalescing for tile data.
    const wrap = createReaderFactory({
      blockCache: new BlockCache({ maxBytes: config.cacheBlocksBytes, blockSize: config.blockSizeBytes }),
      gapBytes: config.coalesceGapBytes,
      coalescerStats: new CoalescerStats(),
    });
    started = performance.now();
    const slide = await openSlide(wrap(source));
    print(`slide: ${describeSlide(slide)}, opened in ${ms(started)}`);
    for (const level of slide.levels) print(`  ${describeLevel(level)}`);
    if (slide.associated.size > 0) {
      const names = [...slide.associated].map(([name, g]) => `${name} ${g.width}x${g.height}`);
      print(`  associated images: ${names.join(', ')}`);
    }

    const found = await readOneTile(slide, codecs, print);
    if (!found) print('tile: every tile tried is sparse (stored as background); nothing to decode');
  } catch (e) {
    report(print, step, e, config);
    return 1;
  } finally {
    await codecs.close();
  }
  return 0;
}

/** Reads and decodes one stored tile: the middle one of the coarsest native level, else a neighbour. */
async function readOneTile(
  slide: Slide,
  codecs: ReturnType<typeof createCodecs>,
  print: (line: string) => void,
): Promise<boolean> {
  const level = [...slide.levels].reverse().find((l) => l.grid !== null);
  const grid = level?.grid;
  if (!level || !grid) {
    print('tile: the slide has no stored tiles');
    return false;
  }
  const candidates = [
    [Math.floor(grid.tilesX / 2), Math.floor(grid.tilesY / 2)],
    [0, 0],
  ] as const;
  for (const [x, y] of candidates) {
    let started = performance.now();
    const bytes = await grid.readTile(x, y);
    if (bytes === null) continue;
    const readTime = ms(started);
    const th = grid.tileHeight;
    const rows = grid.layout === 'strips' && y === grid.tilesY - 1 ? grid.height - y * th : th;
    started = performance.now();
    const image = await codecs.decodeTile(bytes, grid.encoding, grid.tileWidth, rows);
    print(
      `tile: level ${level.index} (${x}, ${y}): ${bytes.length} bytes ${compressionName(grid.encoding.compression)}, ` +
        `read in ${readTime}; decoded ${image.width}x${image.height}x${image.channels} in ${ms(started)}`,
    );
    return true;
  }
  return false;
}

function describeSlide(slide: Slide): string {
  const p = slide.properties;
  const mpp = p.mpp_x !== undefined ? `, ${p.mpp_x.toFixed(4)} µm/px` : '';
  const mag = p.objective_power !== undefined ? `, ${p.objective_power}x` : '';
  return (
    `format ${slide.format}, vendor ${p.vendor}, ${slide.width}x${slide.height}, ` +
    `${slide.levels.length} levels${mpp}${mag}`
  );
}

function describeLevel(level: SlideLevel): string {
  const kind = level.grid
    ? `tiles ${level.tileWidth}x${level.tileHeight} (${level.tilesX}x${level.tilesY}), ${compressionName(level.grid.encoding.compression)}`
    : 'synthesised from a finer level';
  return `level ${level.index}: ${level.width}x${level.height}, downsample ${level.downsample.toFixed(3)}, ${kind}`;
}

function compressionName(code: number): string {
  return COMPRESSION_NAMES.get(code) ?? `compression ${code}`;
}

function ms(started: number): string {
  return `${(performance.now() - started).toFixed(1)} ms`;
}

/** Prints `<step>: FAILED — <code>: <message>` and a diagnosis an operator can act on. */
function report(print: (line: string) => void, step: string, e: unknown, config: Config): void {
  const what = e instanceof MedStreamError ? `${e.code}: ${e.message}` : String(e);
  print(`${step}: FAILED — ${what}`);
  print(`diagnosis: ${diagnose(e, config)}`);
}

/** Names of the errors behind a MedStreamError (the SDK's or transport's), outermost first. */
function causeNames(e: unknown): string[] {
  const names: string[] = [];
  let current: unknown = e;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const c = current as { name?: unknown; code?: unknown; cause?: unknown; Code?: unknown };
    for (const n of [c.name, c.code, c.Code]) if (typeof n === 'string') names.push(n);
    current = c.cause;
  }
  return names;
}

export function diagnose(e: unknown, config: Config): string {
  const names = causeNames(e);
  const has = (...wanted: string[]) => wanted.some((w) => names.includes(w));
  const message = e instanceof Error ? e.message : String(e);
  const code = e instanceof MedStreamError ? e.code : undefined;
  const s3 = config.storage?.startsWith('s3://') === true;
  const endpoint = config.s3Endpoint ?? (s3 ? 'AWS S3' : config.storage);

  if (has('PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException')) {
    return `wrong region: the bucket lives in another region than ${config.s3Region ?? 'the one configured'}; set --s3-region (MEDSTREAM_S3_REGION) to the bucket's region`;
  }
  if (has('NoSuchBucket')) {
    return `bucket missing: the bucket of ${config.storage} does not exist at ${endpoint} (check the name, the endpoint and --s3-force-path-style)`;
  }
  if (has('InvalidAccessKeyId')) {
    return 'access denied: the store does not know this access key (check AWS_ACCESS_KEY_ID / the profile)';
  }
  if (has('SignatureDoesNotMatch')) {
    return 'access denied: the secret key does not match the access key (check AWS_SECRET_ACCESS_KEY)';
  }
  if (has('CredentialsProviderError')) {
    return 'no credentials: none found in the AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or container role)';
  }
  switch (code) {
    case 'access_denied':
      return 'access denied: the credentials were refused or lack permission (S3: s3:ListBucket and s3:GetObject; local: file permissions)';
    case 'connection_error':
      return `endpoint unreachable: could not connect to ${endpoint} (check the URL or --s3-endpoint, DNS, firewalls and proxies)`;
    case 'storage_timeout':
      return `endpoint too slow: ${endpoint} did not answer within --storage-deadline / --storage-attempt-timeout`;
    case 'storage_error':
      return `the store failed: ${message}`;
    case 'range_not_supported':
      return 'the HTTP server ignores Range requests: MedStream cannot read slides from it without downloading them';
    case 'not_found':
      return 'not found: no such object at this storage URL (ids are keys relative to the root or prefix)';
    case 'invalid_id':
      return 'invalid id: ids are relative keys without "..", absolute paths or control characters';
    case 'unsupported_format':
      return `unsupported format: ${message} (MedStream reads Aperio SVS, generic pyramidal TIFF / BigTIFF / COG and OME-TIFF)`;
    case 'corrupt_file':
      return `corrupt file: the slide's structure is broken (${message})`;
    case 'decode_error':
      return `decode error: a stored tile could not be decoded (${message})`;
    default:
      return message;
  }
}
