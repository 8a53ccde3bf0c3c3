// A TIFF or BigTIFF file (either byte order) opened from a ByteSource: the header, the chain of
// directories (with loop detection and a cap on their number), SubIFDs on demand, and typed
// access to tag values. Every offset and count is checked against the file size before it is
// used, so a corrupt file fails with `CorruptFile`, never with a RangeError or a huge read.
//
//   header -> IFD 0 -> IFD 1 -> ... (next-IFD chain)      SubIFDs(IFD n) -> [IFD, IFD, ...]
//
// Opening reads the header and every directory of the chain (few requests: see
// `MetadataReader`); large arrays (tile offsets) stay unread until a tile needs them. A lazy
// open (`lazy: true`) stops at the first directory that the windows read so far do not hold
// (IFD 0 is always read): `readRest` walks the remainder when something needs it, so a slide's
// first level-0 tile need not wait for the other levels' directories. Writers
// that put the directories after the image data (Aperio, libtiff/libvips, NDPI) leave them in
// the file's last few hundred KiB: when a directory of the chain lies outside the windows read
// so far and the rest of the file fits the open's budget (or lies within `TAIL_ALLOWANCE` of
// the end, past the budget), it is fetched in one window (`prefetchChain`).
//
// Hamamatsu NDPI is a classic little-endian TIFF with its own 64-bit extension: the header's
// first-directory offset is 8 bytes (bytes 4-11), and so is each directory's next offset, with
// the high words of the entries' offsets after it (see `readIfd`). A file is read that way when
// its first directory carries the NDPI format flag (tag 65420); `ndpi` says so.

import { CorruptFile } from '../../errors.js';
import type { ByteSource } from '../../storage/types.js';
import { FieldType, Limits, Tag } from './constants.js';
import { readIfd, type Ifd, type IfdEntry, type IfdLayout } from './ifd.js';
import { DEFAULT_OPEN_BUDGET, MetadataReader, type MetadataReaderOptions } from './metadata-reader.js';
import { TagArray } from './tag-array.js';
import { ByteOrder, decodeText } from './values.js';

export interface TiffOpenOptions extends MetadataReaderOptions {
  signal?: AbortSignal;
  /** Read the chain only as far as the windows already fetched hold it (IFD 0 at least). */
  lazy?: boolean;
}

/** Whether `head` (the first bytes of an object) starts like a TIFF or BigTIFF file. */
export function looksLikeTiff(head: Uint8Array): boolean {
  if (head.byteLength < 4) return false;
  const le = head[0] === 0x49 && head[1] === 0x49 && head[3] === 0;
  const be = head[0] === 0x4d && head[1] === 0x4d && head[2] === 0;
  const version = le ? head[2] : be ? head[3] : -1;
  return version === 42 || version === 43;
}

export class TiffFile {
  /** The main chain of directories, in file order. */
  readonly ifds: Ifd[] = [];
  private readonly visited = new Set<number>();
  private readonly subIfdCache = new Map<Ifd, Promise<Ifd[]>>();
  private directoryCount = 0;
  /** Offset of the first directory of the chain not read yet (0: the chain is complete). */
  private pending = 0;
  private rest: Promise<void> | undefined;

  private constructor(
    readonly reader: MetadataReader,
    readonly order: ByteOrder,
    readonly bigTiff: boolean,
    /** Hamamatsu NDPI's 64-bit offset layout (see the module comment). */
    readonly ndpi = false,
  ) {}

  get source(): ByteSource {
    return this.reader.source;
  }

  private get layout(): IfdLayout {
    return { bigTiff: this.bigTiff, order: this.order, reader: this.reader, ndpi: this.ndpi };
  }

  /**
   * Parses the header and the directory chain, or answers null when the object is not a TIFF
   * at all (so that other formats may claim it). A TIFF with a broken structure throws
   * `CorruptFile`.
   */
  static async open(source: ByteSource, options: TiffOpenOptions = {}): Promise<TiffFile | null> {
    const { signal } = options;
    const reader = new MetadataReader(source, options);
    if (source.size < 4) return null;
    // A small file is read whole in one request; a large one starts with the block holding the header.
    const budget = options.budget ?? DEFAULT_OPEN_BUDGET;
    const first = source.size <= budget ? source.size : Math.min(16, source.size);
    const head = await reader.read(0, first, 'TIFF header', { signal, readAhead: 0 });
    if (!looksLikeTiff(head)) return null;

    const order = new ByteOrder(head[0] === 0x49);
    const bigTiff = order.u16(head, 2) === 43;
    const headerSize = bigTiff ? 16 : 8;
    if (source.size < headerSize) throw new CorruptFile(`${source.key}: TIFF header is truncated`);
    if (bigTiff && (order.u16(head, 4) !== 8 || order.u16(head, 6) !== 0)) {
      throw new CorruptFile(`${source.key}: unexpected BigTIFF offset size ${order.u16(head, 4)}`);
    }
    // Before anything reads the first directory (the NDPI probe does): fetch where the chain is.
    // A lazy open wants IFD 0 and its tile tables, not the file's last MiB (see `prefetchChain`).
    const lazy = options.lazy ?? false;
    await prefetchChain(reader, order.offset(head, bigTiff ? 8 : 4, bigTiff), signal, !lazy);
    const ndpiOffset = bigTiff ? undefined : await ndpiFirstDirectory(reader, order, head, signal);
    const tiff = new TiffFile(reader, order, bigTiff, ndpiOffset !== undefined);
    const firstIfd = ndpiOffset ?? order.offset(head, bigTiff ? 8 : 4, bigTiff);
    if (firstIfd === 0) throw new CorruptFile(`${source.key}: TIFF has no directories`);
    await tiff.readChain(firstIfd, signal, lazy);
    return tiff;
  }

  /** Whether every directory of the main chain has been read (always, unless opened lazily). */
  get chainComplete(): boolean {
    return this.pending === 0;
  }

  /**
   * Reads the directories a lazy open left unread (once; later calls share the walk). Reads
   * through the open's windows when the reader has been `resume`d. Throws `CorruptFile` as
   * `open` would have.
   */
  readRest(signal?: AbortSignal): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    this.rest ??= this.readChain(this.pending, signal, false);
    return this.rest;
  }

  private async readChain(
    firstOffset: number,
    signal: AbortSignal | undefined,
    lazy: boolean,
  ): Promise<void> {
    let offset = firstOffset;
    while (offset !== 0) {
      if (this.ifds.length > 0) {
        // Lazily: stop at the first directory that would cost a request.
        if (lazy && !(await this.inWindows(offset))) {
          this.pending = offset;
          return;
        }
        // A later directory from which the rest of the file fits the budget: fetch that tail once.
        await prefetchChain(this.reader, offset, signal);
      }
      const ifd = await this.readDirectory(offset, `IFD ${this.ifds.length}`, signal);
      this.ifds.push(ifd);
      offset = ifd.nextOffset;
    }
    this.pending = 0;
  }

  /**
   * Whether the directory at `offset` lies wholly in the windows fetched so far (reading it
   * costs no request). An offset outside the file answers true: reading it reports the damage.
   */
  private async inWindows(offset: number): Promise<boolean> {
    const countSize = this.bigTiff ? 8 : 2;
    if (!Number.isSafeInteger(offset) || offset <= 0 || offset + countSize > this.source.size) return true;
    if (!this.reader.covers(offset, countSize)) return false;
    const head = await this.reader.read(offset, countSize, 'directory entry count');
    const count = this.bigTiff ? this.order.u64(head, 0) : this.order.u16(head, 0);
    const entrySize = this.bigTiff ? 20 : 12;
    const tail = this.bigTiff || this.ndpi ? 8 : 4;
    const length = count * (entrySize + (this.ndpi ? 4 : 0)) + tail;
    return this.reader.covers(offset + countSize, Math.min(length, this.source.size - offset - countSize));
  }

  private async readDirectory(offset: number, label: string, signal: AbortSignal | undefined): Promise<Ifd> {
    const key = this.source.key;
    const headerSize = this.bigTiff ? 16 : 8;
    if (!Number.isSafeInteger(offset) || offset < headerSize || offset >= this.source.size) {
      throw new CorruptFile(
        `${key}: ${label} offset ${offset} lies outside the file (size ${this.source.size})`,
      );
    }
    if (this.visited.has(offset)) {
      throw new CorruptFile(`${key}: directory loop: ${label} points back to offset ${offset}`);
    }
    if (++this.directoryCount > Limits.maxDirectories) {
      throw new CorruptFile(`${key}: more than ${Limits.maxDirectories} directories`);
    }
    this.visited.add(offset);
    return readIfd(this.layout, offset, label, signal);
  }

  /**
   * Whether reading the SubIFDs of `ifd` costs no request: it has none, or its offsets and the
   * directories' first bytes all lie in the windows fetched so far.
   */
  async subIfdsInWindows(ifd: Ifd): Promise<boolean> {
    const entry = ifd.entries.get(Tag.SubIFDs);
    if (!entry || entry.count === 0) return true;
    if (this.subIfdCache.has(ifd)) return true;
    if (entry.count > Limits.maxSubIfds) return true; // reading them reports the damage
    if (!entry.inline && !this.reader.covers(entry.valueOffset, entry.byteLength)) return false;
    const offsets = (await this.numbers(ifd, Tag.SubIFDs)) ?? [];
    return offsets.every((o) => !Number.isSafeInteger(o) || o <= 0 || this.reader.covers(o, 2));
  }

  /** The SubIFDs (tag 330) of `ifd`, read once, in one batch when they lie close together. */
  subIfds(ifd: Ifd, signal?: AbortSignal): Promise<Ifd[]> {
    let pending = this.subIfdCache.get(ifd);
    if (!pending) {
      pending = this.readSubIfds(ifd, signal);
      this.subIfdCache.set(ifd, pending);
    }
    return pending;
  }

  private async readSubIfds(ifd: Ifd, signal: AbortSignal | undefined): Promise<Ifd[]> {
    const count = ifd.entries.get(Tag.SubIFDs)?.count ?? 0;
    if (count > Limits.maxSubIfds) {
      throw new CorruptFile(`${this.source.key}: ${ifd.label} lists ${count} SubIFDs`);
    }
    const offsets = (await this.numbers(ifd, Tag.SubIFDs, signal)) ?? [];
    const valid = offsets.filter((o) => Number.isSafeInteger(o) && o > 0 && o < this.source.size);
    if (valid.length > 1) {
      const lowest = Math.min(...valid);
      await this.reader.prefetch(lowest, Math.max(...valid) - lowest + 4096, signal);
    }
    const out: Ifd[] = [];
    for (const [i, offset] of offsets.entries()) {
      out.push(await this.readDirectory(offset, `SubIFD ${i} of ${ifd.label}`, signal));
    }
    return out;
  }

  entry(ifd: Ifd, tag: number): IfdEntry | undefined {
    return ifd.entries.get(tag);
  }

  has(ifd: Ifd, tag: number): boolean {
    const entry = ifd.entries.get(tag);
    return entry !== undefined && entry.count > 0;
  }

  /** The raw bytes of a tag's value (at most `Limits.maxValueBytes`), or undefined when absent. */
  async bytes(ifd: Ifd, tag: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    const entry = ifd.entries.get(tag);
    if (!entry || entry.count === 0) return undefined;
    if (entry.inline) return entry.inline;
    if (entry.byteLength > Limits.maxValueBytes) {
      throw new CorruptFile(
        `${this.source.key}: ${ifd.label} tag ${tag} value is ${entry.byteLength} bytes (limit ${Limits.maxValueBytes})`,
      );
    }
    return this.reader.read(entry.valueOffset, entry.byteLength, `${ifd.label} tag ${tag} value`, { signal });
  }

  /**
   * A numeric tag's values (rationals as quotients), or undefined when absent. For small tags
   * only (at most `Limits.maxNumericValues`); large arrays are read through `array()`.
   */
  async numbers(ifd: Ifd, tag: number, signal?: AbortSignal): Promise<number[] | undefined> {
    const entry = ifd.entries.get(tag);
    if (!entry || entry.count === 0) return undefined;
    this.assertNumeric(ifd, entry);
    if (entry.count > Limits.maxNumericValues) {
      throw new CorruptFile(`${this.source.key}: ${ifd.label} tag ${tag} has ${entry.count} values`);
    }
    const bytes = await this.bytes(ifd, tag, signal);
    return bytes ? this.order.numbers(entry.type, bytes, entry.count) : undefined;
  }

  /** The first value of a numeric tag, or undefined when absent. */
  async number(ifd: Ifd, tag: number, signal?: AbortSignal): Promise<number | undefined> {
    const entry = ifd.entries.get(tag);
    if (!entry || entry.count === 0) return undefined;
    this.assertNumeric(ifd, entry);
    if (entry.count === 1) return (await this.numbers(ifd, tag, signal))?.[0];
    // Read just the first value of a longer array.
    return this.order.numbers(entry.type, await this.firstValueBytes(ifd, entry, signal), 1)[0];
  }

  private assertNumeric(ifd: Ifd, entry: IfdEntry): void {
    if (entry.type === FieldType.ASCII || entry.type === FieldType.UNDEFINED) {
      throw new CorruptFile(
        `${this.source.key}: ${ifd.label} tag ${entry.tag} is not numeric (type ${entry.type})`,
      );
    }
  }

  private async firstValueBytes(
    ifd: Ifd,
    entry: IfdEntry,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    if (entry.inline) return entry.inline;
    const size = entry.byteLength / entry.count;
    return this.reader.read(entry.valueOffset, size, `${ifd.label} tag ${entry.tag} value`, { signal });
  }

  /** A text tag (ASCII, or UNDEFINED bytes read as text), or undefined when absent. */
  async string(ifd: Ifd, tag: number, signal?: AbortSignal): Promise<string | undefined> {
    const bytes = await this.bytes(ifd, tag, signal);
    return bytes ? decodeText(bytes) : undefined;
  }

  /** A lazily read integer array (tile offsets, byte counts), or undefined when absent. */
  array(ifd: Ifd, tag: number, name: string): TagArray | undefined {
    const entry = ifd.entries.get(tag);
    if (!entry || entry.count === 0) return undefined;
    return new TagArray(this.reader, this.order, entry, `${name} of ${ifd.label}`);
  }

  /** Ends the open phase: drops the read-ahead windows (later reads go to the source's cache). */
  release(): void {
    this.reader.release();
  }
}

/**
 * Fetches, in as few round trips as the budget allows, the bytes a chain starting at
 * `firstOffset` outside the windows read so far most likely lives in: from it to the end of the
 * file (one request) when that fits the remaining budget, or (`tail`) lies within
 * `TAIL_ALLOWANCE` of the end. The tile tables in that window stay
 * with their TagArrays, so the first tiles need no table reads. A chain laid out
 * otherwise (directories at the start, as in a COG) never gets here: its first directory is in
 * the header's block.
 */
/** Bytes before the first directory that `prefetchChain` takes along (values written first). */
const VALUES_BEFORE_DIRECTORY = 16 * 1024;
/**
 * A directory of the chain this close to the end of the file is fetched with everything after
 * it in one exact read even past the open's budget: libvips, NDPI and real Aperio writers put
 * a directory after each level's data, so the small levels' directories share the last few
 * hundred KiB, and one read of up to 1 MiB there replaces one 64 KiB request per directory
 * (on S3 a request costs ~20 ms; 1 MiB costs a few ms more on the wire).
 */
export const TAIL_ALLOWANCE = 1024 * 1024;

async function prefetchChain(
  reader: MetadataReader,
  firstOffset: number,
  signal: AbortSignal | undefined,
  tail = true,
): Promise<void> {
  const size = reader.size;
  if (!Number.isSafeInteger(firstOffset) || firstOffset <= 0 || firstOffset >= size) return;
  if (reader.covers(firstOffset, 2)) return;
  // From just before the first directory: a block-aligned window would also pay for up to a
  // block of tile data before it (61 KiB of the 517 on the compare bench's SVS), but values a
  // writer put right before its directories (JPEGTables there) must be in.
  const budget = reader.remainingBudget;
  if (size - firstOffset <= budget) {
    const start = Math.max(0, firstOffset - Math.min(VALUES_BEFORE_DIRECTORY, budget - (size - firstOffset)));
    await reader.fetchExact(start, size - start, signal);
  } else if (tail && size - firstOffset <= TAIL_ALLOWANCE) {
    const start = Math.max(0, firstOffset - VALUES_BEFORE_DIRECTORY);
    await reader.fetchExact(start, size - start, signal);
  }
  // Otherwise the chain is read window by window as it goes (MetadataReader.read). Measured on
  // the fixtures and bench slides, neither fetching the file's tail in parallel with the first
  // directory's window nor one-block windows for far directories (to save budget for the tail)
  // helps every layout: libvips, NDPI and real Aperio files spread their directories over more
  // than the budget, and each rule costs one of them a request. The tail allowance does help:
  // libvips 10 -> 6 GETs, NDPI 8 -> 4, real Aperio 4 -> 3 (BENCHMARKS.md, suite `open`).
}

/**
 * The first directory of a Hamamatsu NDPI file, or undefined when `head` (a classic TIFF header)
 * is not one: NDPI is little-endian, its header holds a 64-bit first offset at bytes 4-11, and
 * that directory has tag 65420. Costs no extra request: the directory probed is the one the
 * chain reads next, from the same window.
 */
async function ndpiFirstDirectory(
  reader: MetadataReader,
  order: ByteOrder,
  head: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<number | undefined> {
  if (!order.littleEndian || head.byteLength < 8) return undefined;
  const low = order.u32(head, 4);
  const high = head.byteLength >= 12 ? order.u32(head, 8) : 0;
  // A classic TIFF's bytes 8-11 are its own data; only an offset that fits the file is tried.
  const candidates = high !== 0 ? [low + high * 2 ** 32, low] : [low];
  for (const offset of candidates) {
    if (await hasNdpiFlag(reader, order, offset, signal)) return offset;
  }
  return undefined;
}

async function hasNdpiFlag(
  reader: MetadataReader,
  order: ByteOrder,
  offset: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (!Number.isSafeInteger(offset) || offset < 8 || offset + 2 > reader.size) return false;
  try {
    const count = order.u16(await reader.read(offset, 2, 'IFD 0 entry count', { signal }), 0);
    if (count === 0 || count > Limits.maxEntriesPerIfd || offset + 2 + count * 12 > reader.size) return false;
    const entries = await reader.read(offset + 2, count * 12, 'IFD 0', { signal });
    let flagged = false;
    for (let i = 0; i < count; i++) if (order.u16(entries, i * 12) === Tag.NdpiFormatFlag) flagged = true;
    if (!flagged || offset + 2 + count * 12 + 8 > reader.size) return false;
    // The flag in a classic layout (no 64-bit next offset): read it as a classic TIFF.
    const next = order.u64(await reader.read(offset + 2 + count * 12, 8, 'IFD 0 next offset', { signal }), 0);
    return next === 0 || (Number.isSafeInteger(next) && next >= 8 && next + 2 <= reader.size);
  } catch (error) {
    if (error instanceof CorruptFile) return false;
    throw error;
  }
}
