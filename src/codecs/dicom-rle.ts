// DICOM RLE Lossless frames (transfer syntax 1.2.840.10008.1.2.5, PS3.5 Annex G): a 64-byte header
// (segment count, then 15 segment offsets), one PackBits-coded segment per byte plane — for each
// sample, most significant byte first — decoded here to native little-endian pixels, samples
// interleaved (planar configuration 0). Pure TypeScript: linear in the frame size.

import { DecodeError, UnsupportedFormat } from '../errors.js';
import { decodePackBits } from './packbits.js';

export interface RleFrameInfo {
  rows: number;
  columns: number;
  /** 8, 16 or 32. */
  bitsAllocated: number;
  samplesPerPixel: number;
}

/** The frame's pixels as native little-endian bytes, samples interleaved. */
export function decodeDicomRle(frame: Uint8Array, info: RleFrameInfo): Uint8Array {
  const { rows, columns, bitsAllocated, samplesPerPixel } = info;
  if (![8, 16, 32].includes(bitsAllocated))
    throw new UnsupportedFormat(`RLE frames of BitsAllocated ${bitsAllocated} are not decoded (8, 16 or 32)`);
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3)
    throw new UnsupportedFormat(`RLE frames of ${samplesPerPixel} samples per pixel are not decoded`);
  if (frame.length < 64) throw new DecodeError(`RLE frame of ${frame.length} bytes has no 64-byte header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const count = view.getUint32(0, true);
  const bytes = bitsAllocated / 8;
  const expected = bytes * samplesPerPixel;
  if (count !== expected) {
    throw new DecodeError(
      `RLE frame has ${count} segments; ${samplesPerPixel} samples of ${bitsAllocated} bits need ${expected}`,
    );
  }
  const pixels = rows * columns;
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) offsets.push(view.getUint32(4 + 4 * i, true));
  const out = new Uint8Array(pixels * expected);
  for (let s = 0; s < count; s++) {
    const start = offsets[s];
    const end = s + 1 < count ? offsets[s + 1] : frame.length;
    if (start < 64 || end > frame.length || end < start) {
      throw new DecodeError(
        `RLE segment ${s + 1} lies outside the frame (${start}..${end} of ${frame.length})`,
      );
    }
    const plane = decodePackBits(frame.subarray(start, end), pixels);
    const sample = Math.floor(s / bytes);
    // Segments run from the most significant byte; little endian puts it last.
    const at = sample * bytes + (bytes - 1 - (s % bytes));
    for (let p = 0, o = at; p < pixels; p++, o += expected) out[o] = plane[p];
  }
  return out;
}
