// Derived representations of stored frames for progressive loading (Cornerstone3D's retrieve
// stages): HTJ2K lossless with RPCL progression and TLM markers, HTJ2K lossy, JPEG-LS lossless,
// and 1/4-per-side thumbnails in HTJ2K and JPEG-LS. A frame is decoded at its stored precision
// (volumes/frame-samples.ts), reduced when a thumbnail is asked for, and encoded in worker threads
// (codecs/wasm-encode-worker.ts) on first request; concurrent first requests share one encode;
// the result is kept in derived-cache.ts. Encodes are deterministic: same frame, same bytes.
// A request waits a bounded time (waitTimeoutMs) and then fails with 503 `overloaded`; a shared
// encode or decode is cancelled only when every request waiting on it has left.

import { createHash } from 'node:crypto';
import os from 'node:os';
import type { StoredInstance } from '../catalog/catalog.js';
import { jsonNumber } from '../dicom/json.js';
import { DECODE_BUCKETS_MS } from '../codecs/decode-stats.js';
import { parseJ2kCodestream, rpclViolations } from '../codecs/j2k-markers.js';
import type { WasmEncodeCodec, WasmEncodeResult, WasmEncodeTask } from '../codecs/wasm-encode-worker.js';
import { WorkerPool, type WorkerPoolStats } from '../codecs/worker-pool.js';
import { TransferSyntax } from '../dicom/tags.js';
import { DecodeError, MedStreamError, UnsupportedFormat } from '../errors.js';
import { ByteLru } from '../io/lru.js';
import { SharedFlight, SharedTask } from '../io/shared-flight.js';
import { FrameSampleDecoder, unpackNative, type FramePixelInfo } from '../volumes/frame-samples.js';
import type { DerivedCache, DerivedCacheStats } from './derived-cache.js';
import { pack, reduce } from './derived-samples.js';

/** The alternate frame paths Cornerstone3D's `framesPath` names, and what each serves. */
export const DERIVED_KINDS = ['htj2k', 'htj2kThumbnail', 'jls', 'jlsThumbnail', 'lossy'] as const;
export type DerivedKind = (typeof DERIVED_KINDS)[number];

/** Thumbnails are this many times smaller per side ("JLS reduced" in Cornerstone3D's tables). */
export const THUMBNAIL_FACTOR = 4;

/** Changes whenever the bytes an encode gives could change: cache keys include it. */
export const DERIVED_ENCODING_VERSION = 'openjph-2.4.11+charls-1.2.7+v1';

export interface DerivedFrame {
  bytes: Uint8Array;
  transferSyntax: string;
  mediaType: string;
  /** Cache key (hex digest): also the strong validator of these bytes. */
  key: string;
}

/** Per kind: encodes started, their times (successful ones) and what failed, for /metrics. */
export interface DerivedKindStats {
  encodes: number;
  /** Successful encodes' seconds in the encoder pool (queue wait included): count, sum, buckets. */
  encodeCount: number;
  encodeSumMs: number;
  /** Cumulative counts per bucket of DECODE_BUCKETS_MS. */
  encodeCumulative: number[];
  /** Frames that could not be made: the stored frame did not decode, or the encoder failed. */
  failures: { decode: number; encode: number };
}

export interface DerivedFramesStats {
  kinds: Record<string, DerivedKindStats>;
  /** Requests that joined an encode already in flight for the same frame. */
  joined: number;
  cache: DerivedCacheStats;
}

export interface DerivedFramesOptions {
  cache: DerivedCache;
  /** Encoder threads per codec (default: one per core). */
  workers?: number;
  /** Decoder of stored compressed frames (default: one of its own). */
  decoder?: FrameSampleDecoder;
  /** OpenJPH quantization step of the lossy representation (default 0.002). */
  lossyStep?: number;
  taskTimeoutMs?: number;
  /**
   * Longest a request waits for one derived frame (cache lookups, stored read, decode and encode,
   * queues included) before it fails with 503 `overloaded` (default 60 s; 0 = no limit).
   */
  waitTimeoutMs?: number;
}

/** Default of DerivedFramesOptions.waitTimeoutMs. */
export const DERIVED_WAIT_TIMEOUT_MS = 60_000;

const STORED: ReadonlySet<string> = new Set([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.Jpeg2000,
  TransferSyntax.JpegLsLossless,
  TransferSyntax.JpegLsNearLossless,
]);

/** Whether derived frames can be made from this instance's frames (single-sample, 8/16 bits). */
export function canDerive(instance: StoredInstance): boolean {
  const bits = jsonNumber(instance.json, '00280100');
  return (
    STORED.has(instance.transferSyntax) &&
    (jsonNumber(instance.json, '00280002') ?? 1) === 1 &&
    (bits === 8 || bits === 16)
  );
}

function workerScript(name: string): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`../codecs/${name}${extension}`, self);
}

export class DerivedFrames {
  /** Encodes run (not served from a cache): what the "encode once" tests count. */
  encodes = 0;
  private joined = 0;
  private readonly byKind = new Map<DerivedKind, DerivedKindStats>();
  private readonly pools = new Map<WasmEncodeCodec, WorkerPool<WasmEncodeTask, WasmEncodeResult>>();
  private readonly flights = new Map<string, SharedTask<Uint8Array>>();
  private readonly decoder: FrameSampleDecoder;
  private readonly ownDecoder: boolean;
  /** Decoded stored frames, briefly: the representations of one frame share one decode. */
  private readonly decoded = new ByteLru<string, ArrayLike<number>>({
    maxBytes: 32 * 1024 * 1024,
    sizeOf: () => 1024 * 1024,
  });
  /** Decodes in flight, shared by the encodes of every kind and cancelled only when all left. */
  private readonly decoding = new SharedFlight<string, ArrayLike<number>>();

  constructor(private readonly options: DerivedFramesOptions) {
    this.ownDecoder = options.decoder === undefined;
    this.decoder = options.decoder ?? new FrameSampleDecoder({ workers: options.workers });
  }

  /**
   * The cache key of one derived frame: the instance's catalog key (not its object's: the slices
   * of one NIfTI volume share one object, each as frame 1), the stored version, the frame, the
   * kind, the encoder.
   */
  static key(instance: StoredInstance, frame: number, kind: DerivedKind): string {
    return createHash('sha256')
      .update(`${instance.key}\0${instance.version}\0${frame}\0${kind}\0${DERIVED_ENCODING_VERSION}`)
      .digest('hex')
      .slice(0, 40);
  }

  /**
   * Derived frame `frame` (1-based) of `instance`: from the cache, or made from the stored bytes
   * `readStored` gives. Failures (undecodable frame, encoder refusal) are thrown, never cached.
   */
  async frame(
    instance: StoredInstance,
    frame: number,
    kind: DerivedKind,
    readStored: (signal: AbortSignal) => Promise<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<DerivedFrame> {
    if (!canDerive(instance)) {
      throw new UnsupportedFormat(
        `no derived frames of instance ${instance.sopUid}: stored as ${instance.transferSyntax} with ${jsonNumber(instance.json, '00280002') ?? 1} samples of ${jsonNumber(instance.json, '00280100') ?? '?'} bits (single-sample 8/16-bit native, JPEG 2000 or JPEG-LS frames are derived)`,
      );
    }
    const key = DerivedFrames.key(instance, frame, kind);
    const cached = await this.options.cache.get(key, signal);
    if (cached) return { bytes: cached, key, ...describe(kind, cached) };
    const limit = this.options.waitTimeoutMs ?? DERIVED_WAIT_TIMEOUT_MS;
    if (limit <= 0) return this.made(instance, frame, kind, key, readStored, signal);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`not ready after ${limit} ms`)), limit);
    try {
      return await this.made(
        instance,
        frame,
        kind,
        key,
        readStored,
        signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal,
      );
    } catch (e) {
      if (!deadline.signal.aborted || signal?.aborted) throw e;
      throw new MedStreamError(
        'overloaded',
        `frame ${frame} of instance ${instance.sopUid} as ${kind} was not ready after ${limit} ms`,
        { cause: e, retryable: true },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** Joins the encode of a frame no cache layer had, or starts it. */
  private async made(
    instance: StoredInstance,
    frame: number,
    kind: DerivedKind,
    key: string,
    readStored: (signal: AbortSignal) => Promise<Uint8Array>,
    signal?: AbortSignal,
  ): Promise<DerivedFrame> {
    let flight = this.flights.get(key);
    if (!flight) {
      flight = new SharedTask(
        async (own) => {
          const made = await this.make(instance, await readStored(own), kind, own, frame);
          await this.options.cache.set(key, made);
          return made;
        },
        () => this.flights.delete(key),
      );
      this.flights.set(key, flight);
    } else this.joined++;
    const bytes = await flight.join(signal);
    return { bytes, key, ...describe(kind, bytes) };
  }

  /** Decodes one stored frame and encodes its `kind` representation. */
  async make(
    instance: StoredInstance,
    stored: Uint8Array,
    kind: DerivedKind,
    signal?: AbortSignal,
    /** The frame's number: its decoded samples are then shared with the other kinds for a while. */
    frame?: number,
  ): Promise<Uint8Array> {
    const info = pixelInfo(instance);
    const stats = this.kindStats(kind);
    let samples: ArrayLike<number>;
    try {
      if (frame === undefined) samples = await this.samplesOf(instance, stored, info, signal);
      else {
        const key = `${instance.key}\0${instance.version}\0${frame}`;
        // A decode another kind's encode started is joined, not owned: it stops only when every
        // encode waiting on it has been cancelled. Only decoded samples are kept.
        samples =
          this.decoded.get(key) ??
          (await this.decoding.run(
            key,
            async (own) => {
              const decoded = await this.samplesOf(instance, stored, info, own);
              this.decoded.set(key, decoded);
              return decoded;
            },
            signal,
          ));
      }
    } catch (e) {
      if (!signal?.aborted) stats.failures.decode++;
      throw e;
    }
    let width = info.columns;
    let height = info.rows;
    if (kind === 'htj2kThumbnail' || kind === 'jlsThumbnail') {
      ({ samples, width, height } = reduce(samples, width, height, THUMBNAIL_FACTOR));
    }
    const signed = info.pixelRepresentation === 1;
    const codec: WasmEncodeCodec = kind === 'jls' || kind === 'jlsThumbnail' ? 'jpegls' : 'htj2k';
    // JPEG-LS has no signed samples: signed frames are coded as their BitsAllocated-bit pattern.
    const bits =
      codec === 'jpegls' && signed ? info.bitsAllocated : Math.min(info.bitsStored, info.bitsAllocated);
    const packed = pack(samples, width * height, bits > 8 ? 16 : 8);
    const task: WasmEncodeTask = {
      samples: packed,
      width,
      height,
      bitsPerSample: bits,
      signed: codec === 'htj2k' && signed,
      quantizationStep: kind === 'lossy' ? (this.options.lossyStep ?? 0.002) : undefined,
    };
    this.encodes++;
    stats.encodes++;
    const started = performance.now();
    let result: WasmEncodeResult;
    try {
      result = await this.pool(codec).run(task, [packed.buffer as ArrayBuffer], signal);
    } catch (e) {
      if (!signal?.aborted) stats.failures.encode++;
      throw e;
    }
    const ms = performance.now() - started;
    stats.encodeCount++;
    stats.encodeSumMs += ms;
    DECODE_BUCKETS_MS.forEach((bound, i) => {
      if (ms <= bound) stats.encodeCumulative[i]++;
    });
    return result.bytes;
  }

  private kindStats(kind: DerivedKind): DerivedKindStats {
    let stats = this.byKind.get(kind);
    if (!stats) {
      stats = {
        encodes: 0,
        encodeCount: 0,
        encodeSumMs: 0,
        encodeCumulative: DECODE_BUCKETS_MS.map(() => 0),
        failures: { decode: 0, encode: 0 },
      };
      this.byKind.set(kind, stats);
    }
    return stats;
  }

  /** Counters for /metrics: per kind, joined requests, and the cache layers'. */
  stats(): DerivedFramesStats {
    return {
      kinds: Object.fromEntries(
        [...this.byKind].map(([kind, t]) => [
          kind,
          { ...t, encodeCumulative: [...t.encodeCumulative], failures: { ...t.failures } },
        ]),
      ),
      joined: this.joined,
      cache: this.options.cache.stats(),
    };
  }

  private async samplesOf(
    instance: StoredInstance,
    stored: Uint8Array,
    info: FramePixelInfo,
    signal?: AbortSignal,
  ): Promise<ArrayLike<number>> {
    const native = await this.decoder.decodeNative(stored, instance.transferSyntax, info, signal);
    const samples = unpackNative(native, info);
    if (samples.length < info.rows * info.columns)
      throw new DecodeError(
        `frame decoded to ${samples.length} samples, expected ${info.rows * info.columns}`,
      );
    return samples;
  }

  private pool(codec: WasmEncodeCodec): WorkerPool<WasmEncodeTask, WasmEncodeResult> {
    let pool = this.pools.get(codec);
    if (!pool) {
      pool = new WorkerPool<WasmEncodeTask, WasmEncodeResult>({
        script: workerScript(`${codec}-encode-worker`),
        size: Math.max(1, this.options.workers ?? os.availableParallelism()),
        maxQueue: 4096,
        taskTimeoutMs: this.options.taskTimeoutMs ?? 30_000,
        name: `medstream-${codec}-encode`,
      });
      this.pools.set(codec, pool);
    }
    return pool;
  }

  poolStats(): WorkerPoolStats[] {
    return [...this.pools.values()].map((p) => p.stats());
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    if (this.ownDecoder) await this.decoder.close();
  }
}

/** Transfer syntax and media type of a derived frame's bytes. */
export function describe(
  kind: DerivedKind,
  bytes: Uint8Array,
): { transferSyntax: string; mediaType: string } {
  if (kind === 'jls' || kind === 'jlsThumbnail')
    return { transferSyntax: TransferSyntax.JpegLsLossless, mediaType: 'image/jls' };
  if (kind === 'lossy') return { transferSyntax: TransferSyntax.Htj2k, mediaType: 'image/jphc' };
  const rpcl = rpclViolations(parseJ2kCodestream(bytes)).length === 0;
  return {
    transferSyntax: rpcl ? TransferSyntax.Htj2kLosslessRpcl : TransferSyntax.Htj2kLossless,
    mediaType: 'image/jphc',
  };
}

function pixelInfo(instance: StoredInstance): FramePixelInfo {
  const bitsAllocated = jsonNumber(instance.json, '00280100') ?? 16;
  return {
    rows: jsonNumber(instance.json, '00280010') ?? 0,
    columns: jsonNumber(instance.json, '00280011') ?? 0,
    bitsAllocated,
    bitsStored: jsonNumber(instance.json, '00280101') ?? bitsAllocated,
    pixelRepresentation: jsonNumber(instance.json, '00280103') ?? 0,
    rescaleSlope: 1,
    rescaleIntercept: 0,
  };
}
