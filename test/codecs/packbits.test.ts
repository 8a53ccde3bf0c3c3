import { describe, expect, it } from 'vitest';
import { decodePackBits } from '../../src/codecs/packbits.js';
import { DecodeError } from '../../src/errors.js';

describe('decodePackBits', () => {
  it('decodes the Apple TN1023 / TIFF 6.0 example', () => {
    const packed = Uint8Array.from([
      0xfe, 0xaa, 0x02, 0x80, 0x00, 0x2a, 0xfd, 0xaa, 0x03, 0x80, 0x00, 0x2a, 0x22, 0xf7, 0xaa,
    ]);
    const expected = [0xaa, 0xaa, 0xaa, 0x80, 0x00, 0x2a, 0xaa, 0xaa, 0xaa, 0xaa, 0x80, 0x00, 0x2a, 0x22];
    expected.push(...new Array<number>(10).fill(0xaa));
    expect([...decodePackBits(packed, expected.length)]).toEqual(expected);
  });

  it('skips -128 no-ops and clips runs at the expected length', () => {
    expect([...decodePackBits(Uint8Array.of(0x80, 0x81, 0x05), 4)]).toEqual([5, 5, 5, 5]);
    expect([...decodePackBits(Uint8Array.of(0x03, 1, 2, 3, 4), 2)]).toEqual([1, 2]);
  });

  it('rejects data that runs out', () => {
    expect(() => decodePackBits(Uint8Array.of(0x05, 1, 2), 6)).toThrow(DecodeError);
    expect(() => decodePackBits(Uint8Array.of(0xfe), 3)).toThrow(DecodeError);
    expect(() => decodePackBits(new Uint8Array(0), 1)).toThrow(/ended after 0 of 1/);
  });
});
