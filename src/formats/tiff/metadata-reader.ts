// Reads the small, scattered metadata of a TIFF (header, directories, tag values) with as few
// range requests as possible while a slide is being opened. Each miss fetches a block-aligned
// window that reaches ahead of the asked bytes, because writers (libtiff, Aperio, libvips) put
// a directory's tag values, and often the next directory, right after it; windows are kept
// until `release()`, so the parser's many tiny reads cost nothing more.
//
//   parse IFD at X --miss--> read [block(X), +readAhead) once --> later reads near X: hits
//
// The windows are aligned to the block cache's 64 KiB blocks so that, behind `io/`'s
// BlockCache, one window is exactly one run of blocks (one request) and its blocks stay warm
// for the lazy tile-offset reads that follow. Read-ahead is bounded by a per-open byte budget
// (512 KiB, less one block kept for a last directory); once it is spent, a miss reads only the
// block(s) it needs. (tiff-file.ts may add one exact read of the file's last MiB at most.)

import { CorruptFile } from '../../errors.js';
import type { ByteSource } from '../../storage/types.js';

export interface MetadataReaderOptions {
  /** Alignment of windows; match the block cache's block size. Default 64 KiB. */
  blockSize?: number;
  /** How far past the asked bytes a window reaches at most. Default 256 KiB. */
  readAhead?: number;
  /** Bytes the windows of one open may add up to before read-ahead stops. Default 512 KiB. */
  budget?: number;
}

export interface WindowReadOptions {
  signal?: AbortSignal;
  /** Overrides the read-ahead for this read (0: just the blocks holding the asked bytes). */
  readAhead?: number;
}

interface Window {
  start: number;
  bytes: Uint8Array;
  /** Fetched exactly (not block-aligned, not block-cached): tag arrays inside it keep its bytes. */
  kept?: boolean;
}

export const DEFAULT_WINDOW_BLOCK = 64 * 1024;
export const DEFAULT_READ_AHEAD = 256 * 1024;
export const DEFAULT_OPEN_BUDGET = 512 * 1024;

export class MetadataReader {
  private readonly blockSize: number;
  private readonly readAhead: number;
  private readonly budget: number;
  private windows: Window[] = [];
  private retaining = true;
  /** Bytes fetched through windows so far (the open's read-ahead budget spends from this). */
  fetchedBytes = 0;
  /** Reads sent to the source. */
  requests = 0;

  constructor(
    readonly source: ByteSource,
    options: MetadataReaderOptions = {},
  ) {
    this.blockSize = options.blockSize ?? DEFAULT_WINDOW_BLOCK;
    this.readAhead = options.readAhead ?? DEFAULT_READ_AHEAD;
    this.budget = options.budget ?? DEFAULT_OPEN_BUDGET;
  }

  get size(): number {
    return this.source.size;
  }

  /**
   * Exactly `length` bytes at `offset`. `what` names the structure for the error message when
   * the range lies outside the object (a corrupt offset or count, or a truncated file).
   */
  async read(
    offset: number,
    length: number,
    what: string,
    options: WindowReadOptions = {},
  ): Promise<Uint8Array> {
    const { signal } = options;
    this.checkRange(offset, length, what);
    if (length === 0) return new Uint8Array(0);
    const end = offset + length;
    for (const window of this.windows) {
      if (offset >= window.start && end <= window.start + window.bytes.byteLength) {
        return window.bytes.subarray(offset - window.start, end - window.start);
      }
    }
    if (!this.retaining) {
      this.requests++;
      return this.source.read(offset, length, { purpose: 'metadata', signal });
    }
    const start = Math.floor(offset / this.blockSize) * this.blockSize;
    // One block of the budget stays in reserve for the directory a later miss must still read.
    const spendable = this.budget - this.fetchedBytes - this.blockSize;
    const ahead = Math.max(0, Math.min(options.readAhead ?? this.readAhead, spendable));
    let windowEnd = roundUp(Math.max(end, start + ahead), this.blockSize);
    // Writers often end a file with its last directory: a window that stops short of the end
    // by less than a block takes the rest too.
    if (ahead > 0 && this.size - windowEnd < this.blockSize) windowEnd = this.size;
    windowEnd = Math.min(this.size, windowEnd);
    this.requests++;
    const bytes = await this.source.read(start, windowEnd - start, { purpose: 'metadata', signal });
    this.fetchedBytes += bytes.byteLength;
    this.windows.push({ start, bytes });
    return bytes.subarray(offset - start, end - start);
  }

  /**
   * Fetches [offset, offset + length) as one window so that the reads that follow inside it are
   * hits (a batch of SubIFDs, say). Bounded by the budget like any window.
   */
  async prefetch(offset: number, length: number, signal?: AbortSignal): Promise<void> {
    if (!this.retaining || length <= 0) return;
    const clipped = Math.min(length, Math.max(this.blockSize, this.budget - this.fetchedBytes));
    if (offset < 0 || offset + clipped > this.size) return;
    await this.read(offset, clipped, 'metadata', { signal, readAhead: 0 });
  }

  /**
   * Fetches exactly [offset, offset + length) as a data read — not rounded to cache blocks, so
   * no bytes before `offset` are paid for — and keeps it as a window whose bytes the tag arrays
   * inside it hold on to (`kept`), since the block cache never sees them. Counts against the
   * budget like any window.
   */
  async fetchExact(offset: number, length: number, signal?: AbortSignal): Promise<void> {
    this.checkRange(offset, length, 'metadata');
    if (!this.retaining || length <= 0) return;
    // Replicas sharing metadata blocks (Redis) read the chain through them instead: a replica
    // then opens a slide another one parsed without any range request.
    if ((this.source as { sharesMetadata?: boolean }).sharesMetadata === true) return;
    this.requests++;
    const bytes = await this.source.read(offset, length, { purpose: 'data', signal });
    this.fetchedBytes += bytes.byteLength;
    this.windows.push({ start: offset, bytes, kept: true });
  }

  /** The bytes of [offset, offset + length) when a kept window (`fetchExact`) holds them. */
  keptBytes(offset: number, length: number): Uint8Array | undefined {
    const w = this.windows.find(
      (w) => w.kept && offset >= w.start && offset + length <= w.start + w.bytes.byteLength,
    );
    return w?.bytes.subarray(offset - w.start, offset - w.start + length);
  }

  /** Whether [offset, offset + length) lies in a window already fetched. */
  covers(offset: number, length: number): boolean {
    return this.windows.some((w) => offset >= w.start && offset + length <= w.start + w.bytes.byteLength);
  }

  /** Bytes the open may still fetch as windows before read-ahead stops. */
  get remainingBudget(): number {
    return this.retaining ? Math.max(0, this.budget - this.fetchedBytes) : 0;
  }

  /** The block size windows are aligned to. */
  get alignment(): number {
    return this.blockSize;
  }

  /** Drops the windows; reads from now on go straight to the source (and its block cache). */
  release(): void {
    this.windows = [];
    this.retaining = false;
  }

  /**
   * Starts a second open phase after `release()` (the rest of a lazily opened chain): windows
   * are kept again, with a fresh budget, until the next `release()`.
   */
  resume(): void {
    this.retaining = true;
    this.fetchedBytes = 0;
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (
      !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new CorruptFile(
        `${this.source.key}: ${what} at [${offset}, +${length}) lies outside the file (size ${this.size})`,
      );
    }
  }
}

function roundUp(value: number, multiple: number): number {
  return Math.ceil(value / multiple) * multiple;
}
