// The indexer: lists the storage root page by page, reads the header of every new or changed
// object (one range read for ordinary DICOM files: the parser stops at Pixel Data) and records
// what it found in the catalog in batched transactions. Unchanged objects (same key and listing
// version) are not read again; objects gone from storage leave the catalog at the end of a
// complete scan; an interrupted scan keeps every batch already committed, and the next scan
// picks up where it stopped because everything recorded reads as unchanged.
//
//   list page (1000 keys) -> versions from the catalog -> changed: read headers (N at a time)
//                         -> applyBatch (one transaction) -> next page ... -> removeUnseen
//
// Memory is bounded by one listing page and its reads, whatever the number of objects.

import { isMedStreamError, throwIfAborted } from '../errors.js';
import { parseDicomHeader } from '../dicom/parser.js';
import type { ByteSource, ObjectInfo, ReadOptions, Storage } from '../storage/types.js';
import { FLOAT_BYTES, floatRange } from '../volumes/nifti-float.js';
import { gunzipPrefix, isGzip, parseNiftiHeader, type NiftiHeader } from '../volumes/nifti-header.js';
import type { Catalog, IndexBatch, OtherObject } from './catalog.js';
import { niftiRecords, type NiftiSidecar } from './nifti-record.js';
import { instanceRecord, type InstanceRecord } from './record.js';

/** Bumped when the indexer learns to read objects it used to skip: they are read again. */
export const INDEXER_VERSION = '2';

/** The first read of every object: a DICOM header usually fits, a NIfTI header always does. */
const FIRST_WINDOW = 64 * 1024;
/** Compressed bytes inflated to look for a NIfTI header: bounds a gzip bomb to ~4 MiB. */
const GZIP_PROBE = 4096;

/** Serves reads inside an already fetched prefix from memory, the rest from the source. */
class PrefixedSource implements ByteSource {
  constructor(
    private readonly source: ByteSource,
    private readonly prefix: Uint8Array,
  ) {}
  get key() {
    return this.source.key;
  }
  get size() {
    return this.source.size;
  }
  get identity() {
    return this.source.identity;
  }
  read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array> {
    if (offset + length <= this.prefix.length)
      return Promise.resolve(this.prefix.subarray(offset, offset + length));
    return this.source.read(offset, length, options);
  }
}

/**
 * An object that is neither DICOM nor NIfTI: `other`, unless its name promises one of them —
 * content decides, the name only makes the mismatch worth reporting as an error.
 */
function unrecognised(base: { key: string; version: string; size: number }, why: string): OtherObject {
  const promised = /\.(dcm|dicom)$/i.test(base.key)
    ? 'DICOM Part 10'
    : /\.nii(\.gz)?$/i.test(base.key)
      ? 'NIfTI'
      : undefined;
  return promised
    ? { ...base, kind: 'error', reason: `unsupported_format: named like ${promised} but it is not (${why})` }
    : { ...base, kind: 'other', reason: why };
}

/** The NIfTI header at the start of an object (plain or gzip), or undefined when it is none. */
function niftiHeaderOf(prefix: Uint8Array) {
  let raw: Uint8Array;
  const probe = isGzip(prefix) ? prefix.subarray(0, GZIP_PROBE) : prefix;
  try {
    raw = isGzip(probe) ? gunzipPrefix(probe) : probe;
  } catch {
    return undefined; // gzip, but not a stream we can read: some other compressed file
  }
  // sizeof_hdr alone decides, so a NIfTI cut short is reported as a broken NIfTI, not skipped.
  if (raw.length < 4) return undefined;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const sizes = [view.getInt32(0, true), view.getInt32(0, false)];
  const nifti = sizes.some((n) => n === 348 || n === 540);
  return nifti ? parseNiftiHeader(probe) : undefined;
}

function sidecarOf(bytes: Uint8Array): NiftiSidecar {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  if (parsed && typeof parsed === 'object') {
    for (const key of [
      'Modality',
      'PatientName',
      'PatientID',
      'StudyDescription',
      'SeriesDescription',
      'StudyDate',
      'BodyPartExamined',
    ]) {
      const value = (parsed as Record<string, unknown>)[key];
      if (typeof value === 'string' && value.length <= 64 && !/[\\\0]/.test(value)) out[key] = value;
    }
  }
  return out;
}

export interface IndexProgress {
  listed: number;
  indexed: number;
  unchanged: number;
  other: number;
  failed: number;
}

export interface IndexSummary extends IndexProgress {
  removed: number;
  /** False when the scan stopped early (cancelled): nothing was removed then. */
  complete: boolean;
  ms: number;
}

export interface IndexOptions {
  /** Only keys under this prefix (and only those are removed when gone). */
  prefix?: string;
  /** Header reads in flight (default 32: enough to hide S3 latency). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (progress: IndexProgress) => void;
  /** Per-object deadline for the header read (default 30 s). */
  objectTimeoutMs?: number;
  /** Largest header accepted (default 16 MiB). */
  maxHeaderBytes?: number;
}

/** The listing's notion of a version: size plus ETag (S3, HTTP) or modification time (local). */
export function listingVersion(info: ObjectInfo): string {
  return `${info.size}-${info.etag ?? info.lastModified?.getTime() ?? ''}`;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function forEachConcurrent<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * A 3D float volume's value range: one streaming read of the whole object (the voxels of a `.nii`,
 * all of a `.nii.gz`), under its own deadline of 10x the per-object one (default 5 min).
 */
async function floatVolumeRange(
  source: ByteSource,
  header: NiftiHeader,
  options: Pick<IndexOptions, 'signal' | 'objectTimeoutMs'>,
) {
  if (FLOAT_BYTES[header.datatype] === undefined) return undefined;
  const dims = header.dim.slice(1, header.dim[0] + 1);
  if (dims.slice(3).some((d) => d > 1) || dims.some((d) => d < 1)) return undefined; // refused later
  const voxels = dims.slice(0, 3).reduce((a, b) => a * b, 1);
  const timeout = AbortSignal.timeout(10 * (options.objectTimeoutMs ?? 30_000));
  return floatRange(
    source,
    header,
    voxels,
    options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
  );
}

export interface IndexerOptions {
  /** Modality of NIfTI volumes without a sidecar (default OT). */
  niftiModality?: string;
}

export class Indexer {
  constructor(
    private readonly storage: Storage,
    private readonly catalog: Catalog,
    private readonly options: IndexerOptions = {},
  ) {}

  /** Reads one object's header into records (a DICOM instance, NIfTI slices), or says what it is instead. */
  async readObject(
    info: ObjectInfo,
    options: Pick<IndexOptions, 'signal' | 'objectTimeoutMs' | 'maxHeaderBytes'> = {},
  ): Promise<{ instances: InstanceRecord[] } | { other: OtherObject }> {
    const version = listingVersion(info);
    const base = { key: info.key, version, size: info.size };
    const timeout = AbortSignal.timeout(options.objectTimeoutMs ?? 30_000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      if (info.size === 0) return { other: unrecognised(base, 'empty object') };
      const opened = this.storage.openListed
        ? await this.storage.openListed(info, { signal })
        : await this.storage.open(info.key, { signal });
      const prefix = await opened.read(0, Math.min(opened.size, FIRST_WINDOW), {
        purpose: 'metadata',
        signal,
      });
      const isDicom =
        prefix.length >= 132 && Buffer.from(prefix.subarray(128, 132)).toString('latin1') === 'DICM';
      if (!isDicom) {
        const nifti = niftiHeaderOf(prefix);
        if (!nifti) return { other: unrecognised(base, 'no DICM prefix, no NIfTI header') };
        const records = niftiRecords({ ...base, lastModified: info.lastModified }, nifti, {
          namespace: this.storage.description,
          modality: this.options.niftiModality ?? 'OT',
          sidecar: await this.sidecar(info.key, signal),
          floatRange: await floatVolumeRange(opened, nifti, options),
        });
        return { instances: records };
      }
      const header = await parseDicomHeader(new PrefixedSource(opened, prefix), {
        signal,
        firstWindow: FIRST_WINDOW,
        maxHeaderBytes: options.maxHeaderBytes ?? 16 * 1024 * 1024,
        // Deflated objects: frames are served from an inflated copy (volumes/nifti-slices.ts).
        inflate: true,
      });
      return { instances: [instanceRecord(base, header, this.storage.description)] };
    } catch (e) {
      throwIfAborted(options.signal);
      const message = e instanceof Error ? e.message : String(e);
      if (isMedStreamError(e) && e.code === 'unsupported_format' && message.includes('no DICM prefix')) {
        return { other: { ...base, kind: 'other' } };
      }
      if (timeout.aborted) {
        return { other: { ...base, version: '', kind: 'error', reason: 'header read timed out' } };
      }
      // Storage trouble is not the file's fault: an empty version makes the next scan try again.
      const transient = isMedStreamError(e) && e.retryable;
      const code = isMedStreamError(e) ? e.code : 'internal_error';
      return {
        other: { ...base, version: transient ? '' : version, kind: 'error', reason: `${code}: ${message}` },
      };
    }
  }

  /** The BIDS-style sidecar `<name>.json` of a NIfTI object, when there is one. */
  private async sidecar(key: string, signal: AbortSignal): Promise<NiftiSidecar | undefined> {
    const jsonKey = key.replace(/\.nii(\.gz)?$/i, '.json');
    if (jsonKey === key) return undefined;
    try {
      const source = await this.storage.open(jsonKey, { signal });
      if (source.size === 0 || source.size > 1024 * 1024) return undefined;
      return sidecarOf(await source.read(0, source.size, { signal }));
    } catch (e) {
      if (isMedStreamError(e) && e.code === 'not_found') return undefined;
      throw e;
    }
  }

  /** One scan of the storage root (or `prefix`). */
  async scan(options: IndexOptions = {}): Promise<IndexSummary> {
    const started = Date.now();
    const scan = await this.catalog.beginScan();
    await this.catalog.invalidateSkipped(INDEXER_VERSION);
    const progress: IndexProgress = { listed: 0, indexed: 0, unchanged: 0, other: 0, failed: 0 };
    const concurrency = options.concurrency ?? 32;
    let cursor: string | undefined;
    let complete = false;
    try {
      for (;;) {
        throwIfAborted(options.signal);
        const page = await this.storage.list({
          prefix: options.prefix,
          cursor,
          limit: 1000,
          signal: options.signal,
        });
        progress.listed += page.objects.length;
        const known = await this.catalog.versions(page.objects.map((o) => o.key));
        const batch: IndexBatch = { seen: [], instances: [], others: [] };
        const changed: ObjectInfo[] = [];
        for (const info of page.objects) {
          if (known.get(info.key) === listingVersion(info)) batch.seen.push(info.key);
          else changed.push(info);
        }
        progress.unchanged += batch.seen.length;
        await forEachConcurrent(changed, concurrency, async (info) => {
          const result = await this.readObject(info, options);
          if ('instances' in result) {
            batch.instances.push(...result.instances);
            progress.indexed++;
          } else {
            batch.others.push(result.other);
            if (result.other.kind === 'error') progress.failed++;
            else progress.other++;
          }
        });
        throwIfAborted(options.signal);
        await this.catalog.applyBatch(batch, scan);
        options.onProgress?.({ ...progress });
        if (page.nextCursor === undefined) break;
        cursor = page.nextCursor;
      }
      complete = true;
    } catch (e) {
      if (!(isMedStreamError(e) && e.code === 'cancelled')) throw e;
    }
    const removed = complete ? await this.catalog.removeUnseen(scan, options.prefix ?? '') : 0;
    return { ...progress, removed, complete, ms: Date.now() - started };
  }
}
