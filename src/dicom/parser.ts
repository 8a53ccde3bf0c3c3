// DICOM Part 10 parsing with range reads (PS3.10 §7, PS3.5 §7): the 128-byte preamble and
// `DICM`, the explicit-VR file meta group, then the data set in explicit or implicit VR little
// endian, explicit VR big endian (numbers swapped to little endian as read) or deflated (the data
// set inflated as far as needed, dicom/deflated.ts; offsets are the inflated file's) — nested sequences and items of defined and undefined length included — up to the top
// level Pixel Data element, where it stops. Shared by DICOM WSI and, later, radiology volumes.
//
//   parseDicomHeader(source) -> windows of 64 KiB, 128 KiB, ... (metadata reads, block cached)
//                            -> { meta, dataset, transferSyntax, pixelData: where frames start }
//
// The header is read in growing windows, so its cost is logarithmic in its size and does not
// depend on the size of the pixel data; values longer than `inlineLimit` (extended offset
// tables, private blobs) are skipped over and only their position is kept (`readDeferred`).

import { CorruptFile, UnsupportedFormat, throwIfAborted } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { DataSet, type DicomElement } from './dataset.js';
import { InflatingView } from './deflated.js';
import { lookupTag } from './dictionary.js';
import { IMPLICIT_VR, LONG_LENGTH_VRS, Tag, TransferSyntax, tagName } from './tags.js';

export interface DicomHeaderOptions {
  signal?: AbortSignal;
  /** First read window (default 64 KiB); later ones double, up to 4 MiB. */
  firstWindow?: number;
  /** Largest header (bytes before the pixel data) accepted; default 64 MiB. */
  maxHeaderBytes?: number;
  /** Values longer than this are deferred instead of read (default 256 KiB). */
  inlineLimit?: number;
  /**
   * Reads deflated data sets by inflating them as far as the header (default false: refused as
   * `UnsupportedFormat`). Offsets are then the inflated object's: only for callers that read
   * pixel data through an inflated copy (the catalog, STOW-RS and WADO-RS).
   */
  inflate?: boolean;
}

export interface PixelDataLocation {
  /** Offset of the Pixel Data element's tag. */
  elementOffset: number;
  /** Offset of its value (native pixels, or the first item of an encapsulated sequence). */
  valueOffset: number;
  /** Value length; `undefined` for encapsulated (undefined-length) pixel data. */
  length: number | undefined;
  vr: string;
  /** Encapsulated only: the Basic Offset Table's length in bytes (0 = empty). */
  basicOffsetTableLength?: number;
  /** Encapsulated only: offset of the first fragment's item tag (the origin of every offset table). */
  firstFragmentOffset?: number;
}

export interface DicomHeader {
  meta: DataSet;
  dataset: DataSet;
  transferSyntax: string;
  explicitVr: boolean;
  pixelData?: PixelDataLocation;
  /** Range reads the header cost (before any cache), and the bytes they asked for. */
  reads: number;
  bytesRead: number;
}

const UNDEFINED_LENGTH = 0xffffffff;
/** Bytes per number of the binary VRs whose values a big-endian data set stores swapped. */
const SWAP_SIZE: Record<string, number> = {
  US: 2,
  SS: 2,
  AT: 2,
  OW: 2,
  UL: 4,
  SL: 4,
  FL: 4,
  OF: 4,
  OL: 4,
  FD: 8,
  OD: 8,
  OV: 8,
  UV: 8,
  SV: 8,
};

/** A copy of a big-endian binary value with each number in little-endian order (others as is). */
export function toLittleEndian(bytes: Uint8Array, vr: string): Uint8Array {
  const size = SWAP_SIZE[vr];
  if (size === undefined) return bytes;
  const out = bytes.slice();
  for (let i = 0; i + size <= out.length; i += size) {
    for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j];
  }
  return out;
}
const MAX_DEPTH = 16;
const MAX_WINDOW = 4 * 1024 * 1024;
const RESUME_WINDOW = 4096;

/** Whether the object starts like a DICOM Part 10 file (preamble + `DICM`). */
export async function isDicomPart10(source: ByteSource, signal?: AbortSignal): Promise<boolean> {
  if (source.size < 132 + 8) return false;
  const head = await source.read(128, 4, { purpose: 'metadata', signal });
  return head[0] === 0x44 && head[1] === 0x49 && head[2] === 0x43 && head[3] === 0x4d;
}

/** A forward cursor over the object that reads windows as the parser needs bytes. */
class WindowReader {
  private buf = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  /** Absolute offset of buf[0]. */
  private start = 0;
  pos = 0;
  /** Byte order of numbers: little endian, except the data set of explicit VR big endian. */
  littleEndian = true;
  reads = 0;
  bytesRead = 0;
  private window: number;

  /** The inflated data set of a deflated file, once the reader has switched to it. */
  private inflating: InflatingView | undefined;

  constructor(
    private source: ByteSource,
    private readonly signal: AbortSignal | undefined,
    firstWindow: number,
    private readonly maxBytes: number,
  ) {
    this.window = firstWindow;
  }

  get size(): number {
    return this.source.size;
  }

  /** Makes `n` bytes from `pos` available (throws `CorruptFile` past the end of the object). */
  async need(n: number): Promise<void> {
    if (this.pos + n <= this.start + this.buf.length) return;
    if (this.inflating) {
      if (this.pos + n > this.maxBytes) {
        throw new UnsupportedFormat(
          `${this.source.key}: DICOM header longer than ${this.maxBytes} bytes before the pixel data`,
        );
      }
      await this.inflating.fill(this.pos + n + this.window);
    }
    if (this.pos + n > this.source.size) {
      throw new CorruptFile(`${this.source.key}: DICOM header truncated at byte ${this.pos}`);
    }
    if (this.pos + n > this.maxBytes) {
      throw new UnsupportedFormat(
        `${this.source.key}: DICOM header longer than ${this.maxBytes} bytes before the pixel data`,
      );
    }
    throwIfAborted(this.signal);
    const end = this.start + this.buf.length;
    const from = Math.max(end, this.pos);
    // After skipping a deferred value (an Extended Offset Table) the next element is usually
    // short and last (Pixel Data follows): a small window, without growing the next one.
    const jumped = from > end && end > 0;
    const want = Math.max(this.pos + n - from, jumped ? RESUME_WINDOW : this.window);
    const length = Math.min(want, this.source.size - from);
    if (!jumped) this.window = Math.min(this.window * 2, MAX_WINDOW);
    const chunk = await this.source.read(from, length, { purpose: 'metadata', signal: this.signal });
    this.reads++;
    this.bytesRead += length;
    const keep =
      from === end ? this.buf.subarray(Math.min(this.pos - this.start, this.buf.length)) : new Uint8Array(0);
    const next = new Uint8Array(keep.length + chunk.length);
    next.set(keep, 0);
    next.set(chunk, keep.length);
    this.start = from - keep.length;
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /** Reads the rest through `view` (the inflated data set), from `pos` on. */
  switchTo(view: InflatingView): void {
    this.source = view;
    this.inflating = view;
    this.buf = new Uint8Array(0);
    this.view = new DataView(this.buf.buffer);
    this.start = this.pos;
  }

  /** Whether `pos` is at the end of the object (inflating that far first for a deflated one). */
  async atEnd(): Promise<boolean> {
    await this.inflating?.fill(this.pos + 1);
    return this.pos >= this.source.size;
  }

  u16(at = this.pos): number {
    return this.view.getUint16(at - this.start, this.littleEndian);
  }

  u32(at = this.pos): number {
    return this.view.getUint32(at - this.start, this.littleEndian);
  }

  bytes(at: number, n: number): Uint8Array {
    return this.buf.subarray(at - this.start, at - this.start + n);
  }
}

interface ElementHeader {
  tag: number;
  vr: string;
  length: number;
  /** Header bytes (8 or 12). */
  size: number;
}

/** Parses the file meta group and the data set up to the pixel data. */
export async function parseDicomHeader(
  source: ByteSource,
  options: DicomHeaderOptions = {},
): Promise<DicomHeader> {
  const maxHeaderBytes = options.maxHeaderBytes ?? 64 * 1024 * 1024;
  const inlineLimit = options.inlineLimit ?? 256 * 1024;
  const reader = new WindowReader(source, options.signal, options.firstWindow ?? 64 * 1024, maxHeaderBytes);
  await reader.need(132);
  const magic = reader.bytes(128, 4);
  if (String.fromCharCode(...magic) !== 'DICM') {
    throw new UnsupportedFormat(`${source.key}: not a DICOM Part 10 file (no DICM prefix)`);
  }
  reader.pos = 132;
  const key = source.key;

  const readHeader = async (explicit: boolean): Promise<ElementHeader> => {
    await reader.need(8);
    const group = reader.u16();
    const element = reader.u16(reader.pos + 2);
    const t = ((group << 16) | element) >>> 0;
    if (group === 0xfffe) return { tag: t, vr: '', length: reader.u32(reader.pos + 4), size: 8 };
    if (!explicit) {
      const length = reader.u32(reader.pos + 4);
      // A defined-length sequence carries no VR in implicit VR either: the data dictionary says
      // it is one (ReferencedImageSequence, SegmentSequence, ...), else its items would be kept
      // as opaque bytes (and rendered as text by the JSON model).
      const known = IMPLICIT_VR.get(t) ?? (lookupTag(t)?.vr === 'SQ' ? 'SQ' : undefined);
      const vr = known ?? (length === UNDEFINED_LENGTH ? 'SQ' : 'UN');
      return { tag: t, vr, length, size: 8 };
    }
    const c0 = reader.bytes(reader.pos + 4, 1)[0];
    const c1 = reader.bytes(reader.pos + 5, 1)[0];
    if (c0 < 0x41 || c0 > 0x5a || c1 < 0x41 || c1 > 0x5a) {
      throw new CorruptFile(`${key}: element ${tagName(t)} at byte ${reader.pos} has no valid VR`);
    }
    const vr = String.fromCharCode(c0, c1);
    if (LONG_LENGTH_VRS.has(vr)) {
      await reader.need(12);
      return { tag: t, vr, length: reader.u32(reader.pos + 8), size: 12 };
    }
    return { tag: t, vr, length: reader.u16(reader.pos + 6), size: 8 };
  };

  /** Skips the fragments of nested encapsulated pixel data (an icon image) up to its delimiter. */
  const skipFragments = async (): Promise<void> => {
    for (;;) {
      const h = await readHeader(false);
      reader.pos += 8;
      if (h.tag === Tag.SequenceDelimitation) return;
      if (h.tag !== Tag.Item || h.length === UNDEFINED_LENGTH) {
        throw new CorruptFile(`${key}: bad fragment item ${tagName(h.tag)} at byte ${reader.pos - 8}`);
      }
      if (reader.pos + h.length > reader.size)
        throw new CorruptFile(`${key}: fragment past the end of the object`);
      reader.pos += h.length;
    }
  };

  /**
   * Parses elements into `into` until `end` (absolute offset), an item delimiter (`end`
   * undefined, inside an undefined-length item), or the top-level pixel data (`top`).
   */
  const parseElements = async (
    into: DataSet,
    explicit: boolean,
    end: number | undefined,
    depth: number,
    top: boolean,
  ): Promise<{ pixel?: ElementHeader & { at: number } }> => {
    if (depth > MAX_DEPTH) throw new CorruptFile(`${key}: sequences nested deeper than ${MAX_DEPTH}`);
    for (;;) {
      if (end !== undefined && reader.pos >= end) {
        if (reader.pos > end)
          throw new CorruptFile(`${key}: element overruns its item at byte ${reader.pos}`);
        return {};
      }
      if (end === undefined && top && (await reader.atEnd())) return {};
      const at = reader.pos;
      const h = await readHeader(explicit);
      if (h.tag === Tag.ItemDelimitation) {
        if (end !== undefined || top) throw new CorruptFile(`${key}: stray item delimiter at byte ${at}`);
        reader.pos += 8;
        return {};
      }
      if (h.tag >>> 16 === 0xfffe)
        throw new CorruptFile(`${key}: unexpected ${tagName(h.tag)} at byte ${at}`);
      if (top && h.tag >= Tag.PixelData) return { pixel: { ...h, at } };
      reader.pos += h.size;
      const element: DicomElement = { tag: h.tag, vr: h.vr, offset: reader.pos, length: h.length };
      if (h.vr === 'SQ' || (h.vr === 'UN' && h.length === UNDEFINED_LENGTH)) {
        // A UN element of undefined length holds a sequence in implicit VR (PS3.5 §6.2.2).
        element.items = await parseItems(explicit && h.vr === 'SQ', h.length, depth + 1);
        element.length = reader.pos - element.offset;
      } else if (h.length === UNDEFINED_LENGTH) {
        if (h.tag !== Tag.PixelData) {
          throw new CorruptFile(`${key}: element ${tagName(h.tag)} has an undefined length`);
        }
        await skipFragments();
        element.length = reader.pos - element.offset;
      } else {
        if (reader.pos + h.length > reader.size) {
          throw new CorruptFile(`${key}: element ${tagName(h.tag)} extends past the end of the object`);
        }
        if (h.length <= inlineLimit) {
          await reader.need(h.length);
          element.bytes = reader.bytes(reader.pos, h.length);
          if (!reader.littleEndian) element.bytes = toLittleEndian(element.bytes, h.vr);
        }
        reader.pos += h.length;
      }
      into.elements.set(h.tag, element);
    }
  };

  const parseItems = async (explicit: boolean, length: number, depth: number): Promise<DataSet[]> => {
    const end = length === UNDEFINED_LENGTH ? undefined : reader.pos + length;
    if (end !== undefined && end > reader.size)
      throw new CorruptFile(`${key}: sequence past the end of the object`);
    const items: DataSet[] = [];
    for (;;) {
      if (end !== undefined && reader.pos >= end) return items;
      const at = reader.pos;
      const h = await readHeader(explicit);
      reader.pos += 8;
      if (h.tag === Tag.SequenceDelimitation) {
        if (end !== undefined)
          throw new CorruptFile(`${key}: sequence delimiter in a defined-length sequence`);
        return items;
      }
      if (h.tag !== Tag.Item)
        throw new CorruptFile(`${key}: expected an item at byte ${at}, found ${tagName(h.tag)}`);
      const item = new DataSet();
      if (h.length === UNDEFINED_LENGTH) await parseElements(item, explicit, undefined, depth, false);
      else {
        if (reader.pos + h.length > reader.size)
          throw new CorruptFile(`${key}: item past the end of the object`);
        await parseElements(item, explicit, reader.pos + h.length, depth, false);
      }
      items.push(item);
    }
  };

  // File meta information: explicit VR, bounded by its group length when present.
  const meta = new DataSet();
  const first = await readHeader(true);
  if (first.tag >>> 16 !== 0x0002) throw new CorruptFile(`${key}: no file meta information after DICM`);
  let metaEnd: number | undefined;
  if (first.tag === Tag.FileMetaGroupLength && first.length === 4) {
    await reader.need(12);
    metaEnd = reader.pos + 12 + reader.u32(reader.pos + 8);
  }
  for (;;) {
    if (metaEnd !== undefined && reader.pos >= metaEnd) break;
    await reader.need(8);
    if (reader.u16() !== 0x0002) break;
    const h = await readHeader(true);
    reader.pos += h.size;
    if (h.length === UNDEFINED_LENGTH || reader.pos + h.length > reader.size || h.length > inlineLimit) {
      throw new CorruptFile(`${key}: bad file meta element ${tagName(h.tag)}`);
    }
    await reader.need(h.length);
    meta.elements.set(h.tag, {
      tag: h.tag,
      vr: h.vr,
      offset: reader.pos,
      length: h.length,
      bytes: reader.bytes(reader.pos, h.length),
    });
    reader.pos += h.length;
  }
  const transferSyntax = meta.string(Tag.TransferSyntaxUid);
  if (!transferSyntax) throw new CorruptFile(`${key}: file meta information has no transfer syntax`);
  // Explicit VR big endian: the data set's tags, lengths and binary numbers are big endian;
  // inline numeric values are swapped to little endian, so the DataSet reads the same either way.
  if (transferSyntax === TransferSyntax.ExplicitVrBigEndian) reader.littleEndian = false;
  // Deflated: the data set is one raw deflate stream, inflated as far as the header needs.
  if (transferSyntax === TransferSyntax.DeflatedExplicitVrLittleEndian) {
    if (!options.inflate)
      throw new UnsupportedFormat(`${key}: deflated DICOM data sets cannot be read by range`);
    reader.switchTo(new InflatingView(source, reader.pos, maxHeaderBytes, options.signal));
  }
  const explicitVr = transferSyntax !== TransferSyntax.ImplicitVrLittleEndian;

  const dataset = new DataSet();
  const { pixel } = await parseElements(dataset, explicitVr, undefined, 0, true);
  let pixelData: PixelDataLocation | undefined;
  if (pixel && pixel.tag === Tag.PixelData) {
    const valueOffset = pixel.at + pixel.size;
    if (pixel.length === UNDEFINED_LENGTH) {
      reader.pos = valueOffset;
      await reader.need(8);
      const itemTag = ((reader.u16() << 16) | reader.u16(reader.pos + 2)) >>> 0;
      const botLength = reader.u32(reader.pos + 4);
      if (itemTag !== Tag.Item || botLength === UNDEFINED_LENGTH || botLength % 4 !== 0) {
        throw new CorruptFile(
          `${key}: encapsulated pixel data does not start with a Basic Offset Table item`,
        );
      }
      const firstFragmentOffset = valueOffset + 8 + botLength;
      if (firstFragmentOffset > reader.size)
        throw new CorruptFile(`${key}: Basic Offset Table past the end of the object`);
      pixelData = {
        elementOffset: pixel.at,
        valueOffset,
        length: undefined,
        vr: pixel.vr,
        basicOffsetTableLength: botLength,
        firstFragmentOffset,
      };
    } else {
      if (valueOffset + pixel.length > reader.size) {
        throw new CorruptFile(`${key}: native pixel data extends past the end of the object`);
      }
      pixelData = { elementOffset: pixel.at, valueOffset, length: pixel.length, vr: pixel.vr };
    }
  }
  return {
    meta,
    dataset,
    transferSyntax,
    explicitVr,
    pixelData,
    reads: reader.reads,
    bytesRead: reader.bytesRead,
  };
}
