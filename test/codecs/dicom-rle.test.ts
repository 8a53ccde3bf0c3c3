// DICOM RLE (PS3.5 Annex G) frames: a hand-built 16-bit frame decodes to its little-endian
// pixels (high byte segment first), colour segments interleave, and broken headers or segments
// give DecodeError / UnsupportedFormat, never a wrong image.

import { describe, expect, it } from 'vitest';
import { decodeDicomRle } from '../../src/codecs/dicom-rle.js';
import { DecodeError, UnsupportedFormat } from '../../src/errors.js';

/** A frame of PackBits segments: the 64-byte header, then each segment. */
function frame(segments: number[][]): Uint8Array {
  const header = new Uint8Array(64);
  const view = new DataView(header.buffer);
  view.setUint32(0, segments.length, true);
  let at = 64;
  segments.forEach((s, i) => {
    view.setUint32(4 + 4 * i, at, true);
    at += s.length;
  });
  return Uint8Array.from([...header, ...segments.flat()]);
}

describe('decodeDicomRle', () => {
  it('decodes 16-bit pixels: most significant byte segment first', () => {
    // 4 pixels: 0x0102, 0x0102, 0x0304, 0xff00. High bytes: a run of two 0x01, then literals.
    const high = [0xff, 0x01, 0x01, 0x03, 0xff];
    const low = [0x03, 0x02, 0x02, 0x04, 0x00];
    const out = decodeDicomRle(frame([high, low]), {
      rows: 2,
      columns: 2,
      bitsAllocated: 16,
      samplesPerPixel: 1,
    });
    expect([...new Uint16Array(out.buffer)]).toEqual([0x0102, 0x0102, 0x0304, 0xff00]);
  });

  it('interleaves the three segments of an 8-bit colour frame', () => {
    const out = decodeDicomRle(
      frame([
        [0xff, 10],
        [0xff, 20],
        [0xff, 30],
      ]),
      {
        rows: 1,
        columns: 2,
        bitsAllocated: 8,
        samplesPerPixel: 3,
      },
    );
    expect([...out]).toEqual([10, 20, 30, 10, 20, 30]);
  });

  it('refuses broken frames with a typed error', () => {
    const info = { rows: 2, columns: 2, bitsAllocated: 16, samplesPerPixel: 1 };
    expect(() => decodeDicomRle(new Uint8Array(10), info)).toThrow(DecodeError);
    // One segment where 16-bit pixels need two.
    expect(() => decodeDicomRle(frame([[0xfd, 1]]), info)).toThrow(/need 2/);
    // A segment that ends before the frame does.
    expect(() =>
      decodeDicomRle(
        frame([
          [0x00, 1],
          [0x00, 1],
        ]),
        info,
      ),
    ).toThrow(DecodeError);
    // An offset past the end.
    const bad = frame([
      [0xfd, 1],
      [0xfd, 1],
    ]);
    new DataView(bad.buffer).setUint32(8, 5000, true);
    expect(() => decodeDicomRle(bad, info)).toThrow(DecodeError);
    expect(() => decodeDicomRle(frame([[0]]), { ...info, bitsAllocated: 12 })).toThrow(UnsupportedFormat);
  });
});
