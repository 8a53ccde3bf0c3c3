// One TIFF image file directory (IFD), parsed from its bytes: the entries' tags, types, counts
// and where each value lives (inline in the entry, or at an offset), and the offset of the next
// directory. Values are not read here; `TiffFile` reads them on demand, and `TagArray` reads
// single elements of the large offset arrays.
//
// Hamamatsu NDPI directories (`IfdLayout.ndpi`) are classic TIFF entries followed by a 64-bit
// next-directory offset and then one 32-bit high word per entry: the high 32 bits of that
// entry's value offset (or of its inline LONG/IFD value), which is how NDPI addresses files over
// 4 GiB without BigTIFF (as tifffile and OpenSlide 4 read it).

import { CorruptFile } from '../../errors.js';
import { FieldType, Limits, TYPE_SIZES } from './constants.js';
import type { MetadataReader } from './metadata-reader.js';
import type { ByteOrder } from './values.js';

export interface IfdEntry {
  tag: number;
  type: number;
  count: number;
  /** count x type size; may exceed the file size when the entry is corrupt (checked on use). */
  byteLength: number;
  /** The value bytes when they fit in the entry itself, else null. */
  inline: Uint8Array | null;
  /** File offset of the value bytes when not inline. */
  valueOffset: number;
}

export interface Ifd {
  /** Where it sits in the file's structure, for messages: `IFD 2`, `SubIFD 1 of IFD 0`. */
  label: string;
  offset: number;
  entries: ReadonlyMap<number, IfdEntry>;
  /** Offset of the next directory in the chain, 0 at the end (SubIFDs' chains are not followed). */
  nextOffset: number;
}

export interface IfdLayout {
  bigTiff: boolean;
  order: ByteOrder;
  reader: MetadataReader;
  /** NDPI layout (classic entries, 64-bit next offset, high words after the directory). */
  ndpi?: boolean;
}

export async function readIfd(
  layout: IfdLayout,
  offset: number,
  label: string,
  signal?: AbortSignal,
): Promise<Ifd> {
  const { bigTiff, order, reader } = layout;
  const key = reader.source.key;
  const countSize = bigTiff ? 8 : 2;
  const entrySize = bigTiff ? 20 : 12;
  const fieldSize = bigTiff ? 8 : 4;
  const head = await reader.read(offset, countSize, `${label} entry count`, { signal });
  const count = bigTiff ? order.u64(head, 0) : order.u16(head, 0);
  if (count === 0) throw new CorruptFile(`${key}: ${label} at offset ${offset} has no entries`);
  if (!Number.isSafeInteger(count) || count > Limits.maxEntriesPerIfd) {
    throw new CorruptFile(`${key}: ${label} at offset ${offset} claims ${count} entries`);
  }
  const ndpi = (layout.ndpi ?? false) && !bigTiff;
  // NDPI: 8-byte next offset, then the high words (tolerated missing at the very end of a file).
  const tailSize = ndpi
    ? offset + countSize + count * (entrySize + 4) + 8 <= reader.size
      ? 8 + count * 4
      : 8
    : fieldSize;
  const body = await reader.read(
    offset + countSize,
    count * entrySize + tailSize,
    `${label} (${count} entries)`,
    { signal },
  );
  const highWord = (i: number): number =>
    ndpi && tailSize > 8 ? order.u32(body, count * entrySize + 8 + i * 4) : 0;

  const entries = new Map<number, IfdEntry>();
  for (let i = 0; i < count; i++) {
    const p = i * entrySize;
    const tag = order.u16(body, p);
    const type = order.u16(body, p + 2);
    const typeSize = TYPE_SIZES[type];
    // Unknown field types are skipped, as libtiff does: their size is unknowable.
    if (typeSize === undefined || entries.has(tag)) continue;
    const valueCount = bigTiff ? order.u64(body, p + 4) : order.u32(body, p + 4);
    if (!Number.isSafeInteger(valueCount)) {
      throw new CorruptFile(`${key}: ${label} tag ${tag} has an impossible count`);
    }
    const fieldPos = p + (bigTiff ? 12 : 8);
    const byteLength = valueCount * typeSize;
    const inline = byteLength <= fieldSize ? body.slice(fieldPos, fieldPos + byteLength) : null;
    const high = highWord(i);
    if (inline && high !== 0 && valueCount === 1 && (type === FieldType.LONG || type === FieldType.IFD)) {
      // An NDPI offset beyond 4 GiB stored inline (StripOffsets of one strip): widen to LONG8.
      const wide = new Uint8Array(8);
      const view = new DataView(wide.buffer);
      view.setUint32(order.littleEndian ? 0 : 4, order.u32(inline, 0), order.littleEndian);
      view.setUint32(order.littleEndian ? 4 : 0, high, order.littleEndian);
      entries.set(tag, {
        tag,
        type: FieldType.LONG8,
        count: 1,
        byteLength: 8,
        inline: wide,
        valueOffset: -1,
      });
      continue;
    }
    const valueOffset = inline ? -1 : order.offset(body, fieldPos, bigTiff) + high * 2 ** 32;
    entries.set(tag, { tag, type, count: valueCount, byteLength, inline, valueOffset });
  }
  const nextOffset = ndpi
    ? order.u64(body, count * entrySize)
    : order.offset(body, count * entrySize, bigTiff);
  return { label, offset, entries, nextOffset };
}
