// Whether a DICOM object holds all of its pixel data: native pixel data must fit the object
// (the parser checks that); encapsulated pixel data is walked item by item to its Sequence
// Delimitation Item (PS3.5 §A.4), reading only the 8-byte item headers. Used before an object
// is accepted (STOW-RS), so a truncated upload is refused instead of stored.

import { CorruptFile, throwIfAborted } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import type { DicomHeader } from './parser.js';
import { Tag } from './tags.js';

/** Throws `CorruptFile` when the encapsulated pixel data is cut short or malformed. */
export async function checkPixelDataComplete(
  source: ByteSource,
  header: DicomHeader,
  signal?: AbortSignal,
): Promise<void> {
  const pixel = header.pixelData;
  if (!pixel || pixel.length !== undefined || pixel.firstFragmentOffset === undefined) return;
  let at = pixel.firstFragmentOffset;
  for (let items = 0; ; items++) {
    throwIfAborted(signal);
    if (at + 8 > source.size)
      throw new CorruptFile(`${source.key}: pixel data ends without a sequence delimiter`);
    const head = await source.read(at, 8, { signal });
    const view = new DataView(head.buffer, head.byteOffset, 8);
    const tag = ((view.getUint16(0, true) << 16) | view.getUint16(2, true)) >>> 0;
    const length = view.getUint32(4, true);
    if (tag === Tag.SequenceDelimitation) return;
    if (tag !== Tag.Item || length === 0xffffffff) {
      throw new CorruptFile(`${source.key}: malformed pixel data fragment at byte ${at}`);
    }
    at += 8 + length;
    if (at > source.size)
      throw new CorruptFile(`${source.key}: pixel data fragment past the end of the object`);
    if (items > 10_000_000) throw new CorruptFile(`${source.key}: too many pixel data fragments`);
  }
}
