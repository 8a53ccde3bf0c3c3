// Results of segmentation and heatmap inference (and tissue masks) under a random id: 8-bit gray
// PNGs fetched at /ai/results/{id}.png, and volume results (a mask or map per voxel with the
// source volume's geometry) whose slices, NIfTI and DICOM SEG are encoded when fetched. Kept in a
// byte-bounded LRU in this process; with a shared backend (Redis, shared-results.ts) also written
// there, so every replica finds them (the LRU then caches what this replica made or read). A
// result of radiology data remembers its study (access checks). A volume's voxels as gzip (the
// `.raw` route) are made once and kept with it, in the same LRU.

import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { crc32, deflateRaw, inflateRaw } from 'node:zlib';
import sharp from 'sharp';
import { BadRequest, MedStreamError, NotFound } from '../errors.js';
import { ByteLru } from '../io/lru.js';
import type { Volume } from '../volumes/volume.js';
import type { SharedResultBackend } from './shared-results.js';

const deflate = promisify(deflateRaw);
/** Bytes a volume result takes in memory beyond its voxels (its description, roughly). */
const VOLUME_OVERHEAD = 1024 + 128;
const inflate = promisify(inflateRaw);

/** A mask (class index) or map (round(255 * value)) per voxel of a source volume. */
export interface VolumeResult {
  kind: 'volume';
  task: 'segmentation' | 'heatmap';
  /** The source's geometry (its voxel values are not kept). */
  geometry: Pick<Volume, 'dims' | 'affine' | 'source'>;
  /** One byte per voxel, the volume's index order (i fastest, then j, then k). */
  voxels: Uint8Array;
  labels: string[];
  model: string;
  /** The SOP Instance UID the catalog serves for each slice (the viewer matches frames by it). */
  instances?: (string | undefined)[];
  /** Milliseconds since the epoch when it was stored (set by putVolume; a SEG's ContentDate). */
  created?: number;
}

type Entry = Buffer | VolumeResult;

interface Stored {
  entry: Entry;
  /** The StudyInstanceUID of the source (radiology results); undefined for slides and images. */
  study?: string;
  /** Milliseconds since the epoch after which the result is gone (on every replica). */
  expiresAt: number;
  /** A volume's voxels as a gzip member, once made (see rawGzip). */
  gzip?: Buffer;
}

/** What the shared backend's `meta` holds (JSON): the result without its payload. */
type SharedMeta = { study?: string; expiresAt: number } & (
  { kind: 'plane' } | ({ kind: 'volume'; voxels: number } & Omit<VolumeResult, 'kind' | 'voxels'>)
);

export interface ResultStoreOptions {
  /** Memory for results in this process (oldest dropped first). */
  maxBytes: number;
  /** How long a result lives (here and in the shared backend). */
  ttlMs: number;
  /** Shares results between replicas; absent: they live in this process only. */
  shared?: SharedResultBackend;
  /** Largest payload written to the shared backend (a PNG, or a volume's voxels deflated). */
  maxSharedBytes?: number;
}

export class ResultStore {
  private readonly lru: ByteLru<string, Stored>;
  private readonly shared?: SharedResultBackend;
  private readonly maxSharedBytes: number;
  /** Shared reads in flight, so concurrent requests for one result fetch it once. */
  private readonly loading = new Map<string, Promise<Stored>>();
  /** Gzips being made, so concurrent `.raw` requests for one result compress it once. */
  private readonly gzipping = new Map<string, Promise<Buffer>>();
  private readonly ttlMs: number;

  constructor(options: ResultStoreOptions) {
    this.shared = options.shared;
    this.maxSharedBytes = options.maxSharedBytes ?? Infinity;
    this.ttlMs = options.ttlMs;
    this.lru = new ByteLru({
      maxBytes: options.maxBytes,
      sizeOf: sizeOfStored,
    });
  }

  /** Whether results are shared with other replicas. */
  get isShared(): boolean {
    return this.shared !== undefined;
  }

  /**
   * 400 when a volume result of `voxels` voxels cannot be kept: without a shared backend it must
   * fit this process's memory (--ai-results), else its links would answer 404 at once. Checked
   * before inference; with a shared backend the cap applies to its deflated size, when stored.
   */
  assertFits(voxels: number): void {
    if (this.shared || voxels + VOLUME_OVERHEAD <= this.lru.maxBytes) return;
    throw new BadRequest(
      `a result of ${voxels} voxels does not fit the ${this.lru.maxBytes} bytes kept for results (--ai-results, one byte per voxel): raise it, or share results through Redis (--redis-url)`,
    );
  }

  /** Encodes one gray plane as PNG and stores it (with the study of its source, if any); returns its id. */
  async putPlane(
    plane: { data: Uint8Array; width: number; height: number },
    study?: string,
  ): Promise<string> {
    const id = randomUUID();
    const png = await encodePlane(plane);
    const expiresAt = Date.now() + this.ttlMs;
    await this.share(id, { kind: 'plane', study, expiresAt }, png);
    this.lru.set(id, { entry: png, study, expiresAt });
    return id;
  }

  /** Stores a volume result (with the study of its source, if any); returns its id. */
  async putVolume(given: VolumeResult, study?: string): Promise<string> {
    const id = randomUUID();
    const created = Date.now();
    const result: VolumeResult = { ...given, created };
    const expiresAt = created + this.ttlMs;
    let gzip: Buffer | undefined;
    if (this.shared) {
      const { kind: _kind, voxels, ...rest } = result;
      const deflated = await deflate(voxels, { level: 1 });
      await this.share(id, { kind: 'volume', study, expiresAt, voxels: voxels.length, ...rest }, deflated);
      // Compressed already: its gzip costs a CRC.
      gzip = gzipMember(deflated, voxels);
    }
    this.assertFits(result.voxels.length);
    this.lru.set(id, this.withGzip({ entry: result, study, expiresAt }, gzip));
    return id;
  }

  /** The study a result was made from (undefined: a slide or an uploaded image); 404 when unknown. */
  async studyOf(id: string): Promise<string | undefined> {
    const local = this.local(id);
    if (local) return local.study;
    const meta = this.shared ? await this.shared.meta(id) : undefined;
    if (meta === undefined) throw this.unknown(id);
    return (JSON.parse(meta) as SharedMeta).study;
  }

  /** A stored PNG (a plane result, or slice 0 of a one-slice volume result). */
  async get(id: string): Promise<Buffer> {
    const { entry } = await this.stored(id);
    return Buffer.isBuffer(entry) ? entry : this.slice(id, 0);
  }

  /** A volume result. */
  async volume(id: string): Promise<VolumeResult> {
    const { entry } = await this.stored(id);
    if (Buffer.isBuffer(entry)) throw new NotFound(`result ${id} is an image, not a volume`);
    return entry;
  }

  /**
   * A volume result's voxels as gzip (level 1), the same bytes on every replica. Made once per
   * result and kept with it, in the same memory and for the same time (with Redis it is the
   * stored deflate wrapped, nothing compressed again); when the result and its gzip together
   * do not fit in --ai-results, it is made for each request and not kept.
   */
  async rawGzip(id: string): Promise<Buffer> {
    const stored = await this.stored(id);
    if (stored.gzip) return stored.gzip;
    const { entry } = stored;
    if (Buffer.isBuffer(entry)) throw new NotFound(`result ${id} is an image, not a volume`);
    let p = this.gzipping.get(id);
    if (!p) {
      p = deflate(entry.voxels, { level: 1 })
        .then((deflated) => gzipMember(deflated, entry.voxels))
        .finally(() => this.gzipping.delete(id));
      this.gzipping.set(id, p);
    }
    const gzip = await p;
    // Kept unless the result was dropped (or replaced) meanwhile.
    if (this.lru.peek(id) === stored) this.lru.set(id, this.withGzip(stored, gzip));
    return gzip;
  }

  /** Slice k of a volume result as a PNG (`columns x rows`). */
  async slice(id: string, k: number): Promise<Buffer> {
    const v = await this.volume(id);
    const [nx, ny, nz] = v.geometry.dims;
    if (!Number.isInteger(k) || k < 0 || k >= nz)
      throw new NotFound(`result ${id} has slices 0..${nz - 1}, not ${k}`);
    return encodePlane({ data: v.voxels.subarray(k * nx * ny, (k + 1) * nx * ny), width: nx, height: ny });
  }

  async close(): Promise<void> {
    await this.shared?.close();
  }

  private async share(id: string, meta: SharedMeta, data: Buffer): Promise<void> {
    if (!this.shared) return;
    if (data.length > this.maxSharedBytes)
      throw new BadRequest(
        `the result takes ${data.length} bytes (compressed), over the ${this.maxSharedBytes} bytes a result may take in Redis (--ai-results-shared-max): infer a smaller series or raise the limit`,
      );
    await this.shared.put(id, JSON.stringify(meta, keepNumbers), data);
  }

  /** `stored` with its gzip, if both fit in the memory for results (else without). */
  private withGzip(stored: Stored, gzip: Buffer | undefined): Stored {
    const kept = { ...stored, gzip };
    return gzip && sizeOfStored(kept) <= this.lru.maxBytes ? kept : stored;
  }

  /** This process's copy, unless it has expired. */
  private local(id: string): Stored | undefined {
    const stored = this.lru.get(id);
    if (stored && stored.expiresAt <= Date.now()) {
      this.lru.delete(id);
      return undefined;
    }
    return stored;
  }

  private async stored(id: string): Promise<Stored> {
    const local = this.local(id);
    if (local) return local;
    if (!this.shared) throw this.unknown(id);
    let p = this.loading.get(id);
    if (!p) {
      p = this.fetch(id).finally(() => this.loading.delete(id));
      this.loading.set(id, p);
    }
    return p;
  }

  /** Reads a result from the shared backend (and keeps it in this process's LRU). */
  private async fetch(id: string): Promise<Stored> {
    const shared = this.shared as SharedResultBackend;
    const [metaText, data] = await Promise.all([shared.meta(id), shared.data(id)]);
    if (metaText === undefined || data === undefined) throw this.unknown(id);
    const meta = JSON.parse(metaText, restoreNumbers) as SharedMeta;
    let stored: Stored;
    if (meta.kind === 'plane') stored = { entry: data, study: meta.study, expiresAt: meta.expiresAt };
    else {
      const { kind: _kind, study, expiresAt, voxels: length, ...rest } = meta;
      const inflated = await inflate(data);
      const voxels = new Uint8Array(inflated.buffer, inflated.byteOffset, inflated.length);
      if (voxels.length !== length)
        throw new MedStreamError(
          'internal_error',
          `result ${id} in Redis is damaged (${voxels.length} voxels)`,
        );
      // JSON writes a slice without an instance UID as null.
      const instances = rest.instances?.map((uid) => uid ?? undefined);
      // Written before results remembered when they were made: the TTL says it.
      const created = rest.created ?? expiresAt - this.ttlMs;
      stored = this.withGzip(
        { entry: { kind: 'volume', ...rest, instances, created, voxels }, study, expiresAt },
        gzipMember(data, voxels),
      );
    }
    this.lru.set(id, stored);
    return stored;
  }

  private unknown(id: string): NotFound {
    return new NotFound(
      `no result ${JSON.stringify(id)} (results are kept for a while, then dropped: run the inference again)`,
    );
  }
}

/** Bytes a stored result takes in the LRU. */
function sizeOfStored({ entry, gzip }: Stored): number {
  const size = Buffer.isBuffer(entry) ? entry.length + 128 : entry.voxels.length + VOLUME_OVERHEAD;
  return size + (gzip?.length ?? 0);
}

/**
 * A gzip member (RFC 1952) around raw deflate data of `data`: a fixed 10-byte header (no name,
 * no time, XFL 4 = fastest, OS 255 = unknown, so every platform writes the same bytes), the
 * deflate data, the CRC-32 and the length modulo 2^32.
 */
function gzipMember(deflated: Uint8Array, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(10 + deflated.length + 8);
  out.set([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 0xff]);
  out.set(deflated, 10);
  out.writeUInt32LE(crc32(data), 10 + deflated.length);
  out.writeUInt32LE(data.length % 2 ** 32, 14 + deflated.length);
  return out;
}

/**
 * JSON loses -0 (an affine's zero can be one, and the NIfTI writer keeps its sign bit) and turns
 * NaN and infinities into null: they travel as {"$number": "-0" | "NaN" | ...}, so a result read
 * back from Redis writes the same bytes as the one kept in memory.
 */
function keepNumbers(_key: string, value: unknown): unknown {
  if (typeof value !== 'number' || (Number.isFinite(value) && !Object.is(value, -0))) return value;
  return { $number: Object.is(value, -0) ? '-0' : String(value) };
}

function restoreNumbers(_key: string, value: unknown): unknown {
  if (typeof value === 'object' && value !== null && '$number' in value) {
    const n = (value as { $number: string }).$number;
    return n === '-0' ? -0 : Number(n);
  }
  return value;
}

function encodePlane(plane: { data: Uint8Array; width: number; height: number }): Promise<Buffer> {
  return sharp(plane.data, { raw: { width: plane.width, height: plane.height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 6 })
    .toBuffer();
}
