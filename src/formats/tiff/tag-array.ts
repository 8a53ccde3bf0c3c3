// A large integer array of one directory (TileOffsets, TileByteCounts, StripOffsets, ...) that
// is never read whole: `get(i)` reads just element i, as a metadata read, so opening a level
// with 150 000 tiles costs nothing and each tile costs a few bytes of its arrays (the block
// cache groups neighbouring elements into one cached block). Arrays small enough to sit inline
// in their entry are decoded from it directly, and so are arrays that arrived in a window the
// open fetched exactly (`MetadataReader.fetchExact`: the block cache never saw those bytes).

import { CorruptFile } from '../../errors.js';
import { FieldType, TYPE_SIZES } from './constants.js';
import type { IfdEntry } from './ifd.js';
import type { MetadataReader } from './metadata-reader.js';
import type { ByteOrder } from './values.js';

const INTEGER_TYPES = new Set<number>([
  FieldType.BYTE,
  FieldType.SHORT,
  FieldType.LONG,
  FieldType.IFD,
  FieldType.LONG8,
  FieldType.IFD8,
]);

export class TagArray {
  readonly count: number;
  private readonly elementSize: number;
  /** The whole array, when it was fetched with the directories (kept window) or is inline. */
  private readonly held: Uint8Array | undefined;

  /** Throws `CorruptFile` when the entry is not an unsigned integer array inside the file. */
  constructor(
    private readonly reader: MetadataReader,
    private readonly order: ByteOrder,
    private readonly entry: IfdEntry,
    /** What the array is, for messages (`TileOffsets of IFD 0`). */
    private readonly what: string,
  ) {
    const key = reader.source.key;
    if (!INTEGER_TYPES.has(entry.type)) {
      throw new CorruptFile(`${key}: ${what} has field type ${entry.type}, not an unsigned integer type`);
    }
    this.count = entry.count;
    this.elementSize = TYPE_SIZES[entry.type];
    this.held = entry.inline ?? reader.keptBytes(entry.valueOffset, entry.byteLength);
    if (!entry.inline) {
      const end = entry.valueOffset + entry.byteLength;
      if (!Number.isSafeInteger(end) || entry.valueOffset <= 0 || end > reader.size) {
        throw new CorruptFile(
          `${key}: ${what} (${entry.count} values at offset ${entry.valueOffset}) lies outside the file`,
        );
      }
    }
  }

  /** Element `index` (0 <= index < count). */
  async get(index: number, signal?: AbortSignal): Promise<number> {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.count) {
      throw new CorruptFile(`${this.reader.source.key}: ${this.what} has no element ${index}`);
    }
    const size = this.elementSize;
    const bytes = this.held
      ? this.held.subarray(index * size, (index + 1) * size)
      : await this.reader.read(this.entry.valueOffset + index * size, size, this.what, { signal });
    const value = this.order.numbers(this.entry.type, bytes, 1)[0];
    if (!Number.isSafeInteger(value)) {
      throw new CorruptFile(`${this.reader.source.key}: ${this.what}[${index}] is out of range`);
    }
    return value;
  }
}
