// Where each frame of a multi-frame instance is, found without reading the pixel data
// (PS3.5 §8.2 and Annex A.4): native pixels are at fixed strides; encapsulated frames are
// located from the Extended Offset Table, else the Basic Offset Table, else by walking the
// fragment item headers lazily, remembering what the walk has seen.
//
//   EOT:   entry i (8 + 8 bytes, block cached)              -> one data read of the frame
//   BOT:   entries i, i+1 (block cached)                    -> one data read [start_i, start_i+1)
//   none:  item headers parsed from one span read from the last known fragment (the frame
//          inside it served from it), else one data read of the fragment (+ next header)
//
// Opening costs nothing here beyond the header; a frame costs its own bytes plus, the first
// time, the offset-table block(s) it needs (or the item headers up to it, without a table).

import { CorruptFile, throwIfAborted } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import type { DicomElement } from './dataset.js';
import type { DicomHeader } from './parser.js';
import { Tag } from './tags.js';

const UNDEFINED_LENGTH = 0xffffffff;
/** A frame larger than this is refused as corrupt (no slide stores 1 GiB frames). */
const MAX_FRAME_BYTES = 1024 * 1024 * 1024;
/** Bounds of one read of a fragment walk (no offset table). */
const WALK_SPAN_MIN = 64 * 1024;
const WALK_SPAN_MAX = 8 * 1024 * 1024;

export interface FrameTable {
  readonly count: number;
  /** How frames are located: for diagnostics and tests. */
  readonly method:
    'native' | 'extended-offset-table' | 'basic-offset-table' | 'fragment-walk' | 'single-frame';
  /** The stored bytes of frame `index` (0-based). Throws `CorruptFile` for offsets past the object. */
  read(index: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/**
 * The frames of an instance whose header was parsed. `frameBytes` is the size of one native
 * (uncompressed) frame. Throws `CorruptFile` when the pixel data cannot hold `count` frames.
 */
export function frameTable(
  source: ByteSource,
  header: DicomHeader,
  count: number,
  frameBytes: number,
): FrameTable {
  const key = source.key;
  const pixel = header.pixelData;
  if (!pixel) throw new CorruptFile(`${key}: the instance has no Pixel Data`);
  if (pixel.length !== undefined) {
    if (frameBytes * count > pixel.length) {
      throw new CorruptFile(
        `${key}: native pixel data of ${pixel.length} bytes cannot hold ${count} frames of ${frameBytes} bytes`,
      );
    }
    return {
      count,
      method: 'native',
      read(index, signal) {
        checkIndex(key, index, count);
        return source.read(pixel.valueOffset + index * frameBytes, frameBytes, { purpose: 'data', signal });
      },
    };
  }
  const origin = pixel.firstFragmentOffset as number;
  const botLength = pixel.basicOffsetTableLength ?? 0;
  const eot = header.dataset.get(Tag.ExtendedOffsetTable);
  const eotLengths = header.dataset.get(Tag.ExtendedOffsetTableLengths);
  if (eot && eot.length > 0) return extendedTable(source, eot, eotLengths, origin, count);
  // One frame is every fragment up to the delimiter: one read of the rest of the object.
  if (count === 1 && source.size - origin <= MAX_FRAME_BYTES) return singleFrameTable(source, origin);
  if (botLength > 0) return basicTable(source, pixel.valueOffset + 8, botLength, origin, count);
  return new FragmentWalk(source, origin, count);
}

function singleFrameTable(source: ByteSource, origin: number): FrameTable {
  const key = source.key;
  return {
    count: 1,
    method: 'single-frame',
    async read(index, signal) {
      checkIndex(key, index, 1);
      if (origin + 8 > source.size) throw new CorruptFile(`${key}: frame 1 lies past the end of the object`);
      const span = await source.read(origin, source.size - origin, { purpose: 'data', signal });
      const view = new DataView(span.buffer, span.byteOffset, span.byteLength);
      const parts: Uint8Array[] = [];
      for (let pos = 0; pos + 8 <= span.length;) {
        const t = ((view.getUint16(pos, true) << 16) | view.getUint16(pos + 2, true)) >>> 0;
        if (t === Tag.SequenceDelimitation) break;
        if (t !== Tag.Item)
          throw new CorruptFile(`${key}: frame 1: expected a fragment item at byte ${origin + pos}`);
        const length = view.getUint32(pos + 4, true);
        if (pos + 8 + length > span.length)
          throw new CorruptFile(`${key}: frame 1: a fragment runs past the end of the object`);
        parts.push(span.subarray(pos + 8, pos + 8 + length));
        pos += 8 + length;
      }
      if (parts.length === 0 || parts.every((p) => p.length === 0))
        throw new CorruptFile(`${key}: frame 1 is empty`);
      return parts.length === 1 ? parts[0] : concat(parts);
    },
  };
}

function checkIndex(key: string, index: number, count: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new CorruptFile(`${key}: frame ${index + 1} does not exist (the instance has ${count})`);
  }
}

function checkSpan(source: ByteSource, start: number, length: number, what: string): void {
  if (!(start >= 0) || !(length >= 0) || length > MAX_FRAME_BYTES || start + length > source.size) {
    throw new CorruptFile(
      `${source.key}: ${what} at byte ${start} (+${length}) lies past the end of the object`,
    );
  }
}

/** Little-endian entries of an offset table, read lazily (through the block cache) or from memory. */
async function entry(
  source: ByteSource,
  element: DicomElement | { offset: number; bytes?: Uint8Array },
  index: number,
  size: 4 | 8,
  signal?: AbortSignal,
): Promise<number> {
  const bytes = element.bytes
    ? element.bytes.subarray(index * size, index * size + size)
    : await source.read(element.offset + index * size, size, { purpose: 'metadata', signal });
  const view = new DataView(bytes.buffer, bytes.byteOffset, size);
  return size === 4 ? view.getUint32(0, true) : Number(view.getBigUint64(0, true));
}

function extendedTable(
  source: ByteSource,
  eot: DicomElement,
  lengths: DicomElement | undefined,
  origin: number,
  count: number,
): FrameTable {
  const key = source.key;
  if (eot.length !== count * 8) {
    throw new CorruptFile(
      `${key}: the Extended Offset Table has ${eot.length / 8} entries for ${count} frames`,
    );
  }
  if (!lengths || lengths.length !== count * 8) {
    throw new CorruptFile(`${key}: the Extended Offset Table Lengths do not match ${count} frames`);
  }
  return {
    count,
    method: 'extended-offset-table',
    async read(index, signal) {
      checkIndex(key, index, count);
      const [offset, length] = await Promise.all([
        entry(source, eot, index, 8, signal),
        entry(source, lengths, index, 8, signal),
      ]);
      // Each frame is one fragment (PS3.5 A.4): its value starts after the 8-byte item header.
      const start = origin + offset + 8;
      checkSpan(source, start, length, `frame ${index + 1}`);
      if (length === 0) throw new CorruptFile(`${key}: frame ${index + 1} is empty`);
      return source.read(start, length, { purpose: 'data', signal });
    },
  };
}

function basicTable(
  source: ByteSource,
  tableOffset: number,
  tableLength: number,
  origin: number,
  count: number,
): FrameTable {
  const key = source.key;
  if (tableLength / 4 !== count) {
    throw new CorruptFile(
      `${key}: the Basic Offset Table has ${tableLength / 4} entries for ${count} frames`,
    );
  }
  const table = { offset: tableOffset };
  return {
    count,
    method: 'basic-offset-table',
    async read(index, signal) {
      checkIndex(key, index, count);
      const start = origin + (await entry(source, table, index, 4, signal));
      if (index + 1 < count) {
        const end = origin + (await entry(source, table, index + 1, 4, signal));
        checkSpan(source, start, end - start, `frame ${index + 1}`);
        if (end - start < 8) throw new CorruptFile(`${key}: frame ${index + 1} has no fragments`);
        return fragmentsIn(key, await source.read(start, end - start, { purpose: 'data', signal }), index);
      }
      // The last frame runs to the sequence delimiter: walk its fragments' headers.
      const parts: Uint8Array[] = [];
      let pos = start;
      for (let n = 0; ; n++) {
        throwIfAborted(signal);
        if (pos + 8 > source.size) {
          if (n > 0) break; // no delimiter before the end: tolerated once something was read
          throw new CorruptFile(`${key}: frame ${index + 1} lies past the end of the object`);
        }
        const head = await source.read(pos, 8, { purpose: 'metadata', signal });
        const view = new DataView(head.buffer, head.byteOffset, 8);
        const t = ((view.getUint16(0, true) << 16) | view.getUint16(2, true)) >>> 0;
        if (t === Tag.SequenceDelimitation && n > 0) break;
        if (t !== Tag.Item) throw new CorruptFile(`${key}: expected a fragment item at byte ${pos}`);
        const length = view.getUint32(4, true);
        checkSpan(source, pos + 8, length, `a fragment of frame ${index + 1}`);
        if (length > 0) parts.push(await source.read(pos + 8, length, { purpose: 'data', signal }));
        pos += 8 + length;
        if (n > 1024) throw new CorruptFile(`${key}: frame ${index + 1} has more than 1024 fragments`);
      }
      return concat(parts);
    },
  };
}

/** The fragment values of one frame's byte span (item headers removed). */
function fragmentsIn(key: string, span: Uint8Array, index: number): Uint8Array {
  const view = new DataView(span.buffer, span.byteOffset, span.byteLength);
  const parts: Uint8Array[] = [];
  let pos = 0;
  while (pos + 8 <= span.length) {
    const t = ((view.getUint16(pos, true) << 16) | view.getUint16(pos + 2, true)) >>> 0;
    if (t !== Tag.Item) throw new CorruptFile(`${key}: frame ${index + 1}: expected a fragment item`);
    const length = view.getUint32(pos + 4, true);
    if (pos + 8 + length > span.length) {
      throw new CorruptFile(`${key}: frame ${index + 1}: a fragment overruns the next frame`);
    }
    parts.push(span.subarray(pos + 8, pos + 8 + length));
    pos += 8 + length;
  }
  return parts.length === 1 ? parts[0] : concat(parts);
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * No offset table: fragment k is frame k (one fragment per frame, as every WSI writer stores
 * them; a single-frame instance takes all fragments). The item headers are found by reading
 * the pixel data from the last one known in large spans (sized from the mean frame size to
 * reach the frame asked for, 64 KiB to 8 MiB) and parsing every header inside a span, so
 * reaching frame k costs one request, not one per 64 KiB block; a frame inside the span just
 * read is served from it. Reading a frame also reads the next item header (8 more bytes), so
 * the frame after it needs no walk. Positions found are kept for the life of the open slide.
 */
class FragmentWalk implements FrameTable {
  readonly method = 'fragment-walk' as const;
  /** Offset of fragment k's item tag, and its value length. */
  private readonly starts: number[] = [];
  private readonly lengths: number[] = [];
  private readonly origin: number;
  private next: number;
  private ended = false;
  private walking: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly source: ByteSource,
    origin: number,
    readonly count: number,
  ) {
    this.origin = origin;
    this.next = origin;
  }

  async read(index: number, signal?: AbortSignal): Promise<Uint8Array> {
    const key = this.source.key;
    checkIndex(key, index, this.count);
    if (this.count === 1) return this.readAll(signal);
    if (index >= this.starts.length) {
      // One walk at a time; concurrent readers wait for the walk and then find their frame.
      const walk = this.walking.then(() => this.walkTo(index, signal));
      this.walking = walk.catch(() => undefined);
      const span = await walk;
      const start = this.starts[index] + 8;
      const length = this.lengths[index];
      if (length === 0) throw new CorruptFile(`${key}: frame ${index + 1} is empty`);
      if (span && start >= span.start && start + length <= span.start + span.bytes.length) {
        // A copy: the span (up to 8 MiB) is not kept alive by the frame's bytes.
        return span.bytes.slice(start - span.start, start - span.start + length);
      }
    }
    const start = this.starts[index] + 8;
    const length = this.lengths[index];
    if (length === 0) throw new CorruptFile(`${key}: frame ${index + 1} is empty`);
    // The next frame's item header rides along when it is not known yet.
    const withNext =
      index + 1 === this.starts.length &&
      !this.ended &&
      index + 1 < this.count &&
      start + length + 8 <= this.source.size;
    if (!withNext) return this.source.read(start, length, { purpose: 'data', signal });
    const bytes = await this.source.read(start, length + 8, { purpose: 'data', signal });
    if (this.starts.length === index + 1) this.parse({ start, bytes }, index);
    return bytes.subarray(0, length);
  }

  /** Reads spans until fragment `index` is located; answers the last span read, if any. */
  private async walkTo(
    index: number,
    signal?: AbortSignal,
  ): Promise<{ start: number; bytes: Uint8Array } | undefined> {
    const key = this.source.key;
    const size = this.source.size;
    let span: { start: number; bytes: Uint8Array } | undefined;
    while (this.starts.length <= index) {
      throwIfAborted(signal);
      if (this.ended || this.next + 8 > size) {
        this.ended = true;
        throw new CorruptFile(
          `${key}: frame ${index + 1} is missing: the pixel data has only ${this.starts.length} fragments for ${this.count} frames`,
        );
      }
      // Replicas sharing metadata blocks (Redis) walk header by header through those blocks, so
      // that a walk one replica made costs the others no request.
      if ((this.source as { sharesMetadata?: boolean }).sharesMetadata === true) {
        const header = await this.itemAt(this.next, signal);
        if (header && this.starts.length < this.count) {
          this.starts.push(this.next);
          this.lengths.push(header.length);
          this.next += 8 + header.length;
        }
        continue;
      }
      // Enough for the frames up to `index` (and the next header) at the mean frame size, plus a quarter.
      const mean = (size - this.origin) / this.count;
      const want = Math.ceil((index + 1 - this.starts.length) * (mean + 8) * 1.25) + 16;
      const length = Math.min(size - this.next, Math.max(WALK_SPAN_MIN, Math.min(WALK_SPAN_MAX, want)));
      span = {
        start: this.next,
        bytes: await this.source.read(this.next, length, { purpose: 'data', signal }),
      };
      this.parse(span, index);
    }
    return span;
  }

  /**
   * Records every item header that lies whole inside `span`, from `this.next` on. A broken
   * header past fragment `needed` ends the parse without an error: it fails the frame it
   * belongs to when that one is read, not the frame asked for now.
   */
  private parse(span: { start: number; bytes: Uint8Array }, needed: number): void {
    const { bytes } = span;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let rel = this.next - span.start;
    while (rel >= 0 && rel + 8 <= bytes.length && this.starts.length < this.count && !this.ended) {
      const pos = span.start + rel;
      const t = ((view.getUint16(rel, true) << 16) | view.getUint16(rel + 2, true)) >>> 0;
      if (t === Tag.SequenceDelimitation) {
        this.ended = true;
        return;
      }
      const length = view.getUint32(rel + 4, true);
      try {
        if (t !== Tag.Item || length === UNDEFINED_LENGTH)
          throw new CorruptFile(`${this.source.key}: expected a fragment item at byte ${pos}`);
        checkSpan(this.source, pos + 8, length, 'a fragment');
      } catch (error) {
        if (this.starts.length > needed) return;
        throw error;
      }
      this.starts.push(pos);
      this.lengths.push(length);
      this.next = pos + 8 + length;
      rel = this.next - span.start;
    }
  }

  /** The item header at `pos`, or undefined at the sequence delimiter / end of the object. */
  private async itemAt(pos: number, signal?: AbortSignal): Promise<{ length: number } | undefined> {
    const key = this.source.key;
    if (pos + 8 > this.source.size) {
      this.ended = true;
      return undefined;
    }
    const head = await this.source.read(pos, 8, { purpose: 'metadata', signal });
    const view = new DataView(head.buffer, head.byteOffset, 8);
    const t = ((view.getUint16(0, true) << 16) | view.getUint16(2, true)) >>> 0;
    if (t === Tag.SequenceDelimitation) {
      this.ended = true;
      return undefined;
    }
    const length = view.getUint32(4, true);
    if (t !== Tag.Item || length === UNDEFINED_LENGTH)
      throw new CorruptFile(`${key}: expected a fragment item at byte ${pos}`);
    checkSpan(this.source, pos + 8, length, 'a fragment');
    return { length };
  }

  private async readAll(signal?: AbortSignal): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let pos = this.next;
    for (let n = 0; n <= 4096; n++) {
      const header = await this.itemAt(pos, signal);
      if (!header) break;
      if (header.length > 0)
        parts.push(await this.source.read(pos + 8, header.length, { purpose: 'data', signal }));
      pos += 8 + header.length;
    }
    this.ended = false;
    if (parts.length === 0) throw new CorruptFile(`${this.source.key}: the pixel data has no fragments`);
    return concat(parts);
  }
}
