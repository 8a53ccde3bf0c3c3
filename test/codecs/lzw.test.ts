import { describe, expect, it } from 'vitest';
import { decodeLzw } from '../../src/codecs/lzw.js';
import { DecodeError, UnsupportedFormat } from '../../src/errors.js';

/** Packs codes MSB-first with the given widths (the encoder side, written independently). */
function pack(codes: readonly (readonly [code: number, bits: number])[]): Uint8Array {
  const bits: number[] = [];
  for (const [code, width] of codes) for (let i = width - 1; i >= 0; i--) bits.push((code >> i) & 1);
  while (bits.length % 8) bits.push(0);
  const out = new Uint8Array(bits.length / 8);
  for (let i = 0; i < bits.length; i++) out[i >> 3] |= bits[i] << (7 - (i & 7));
  return out;
}

describe('decodeLzw', () => {
  it('decodes the TIFF 6.0 specification example (section 13)', () => {
    // "7 7 7 8 8 7 7 6 6" is coded as Clear 7 258 8 8 258 6 6 EOI.
    const codes = [256, 7, 258, 8, 8, 258, 6, 6, 257].map((c) => [c, 9] as const);
    expect([...decodeLzw(pack(codes), 9)]).toEqual([7, 7, 7, 8, 8, 7, 7, 6, 6]);
  });

  it('handles the KwKwK case (a code used in the step that defines it)', () => {
    // "a a a a": a, then 258 = "aa" is emitted while being defined, then a.
    expect([
      ...decodeLzw(
        pack([
          [256, 9],
          [97, 9],
          [258, 9],
          [97, 9],
          [257, 9],
        ]),
        4,
      ),
    ]).toEqual([97, 97, 97, 97]);
  });

  it('switches to 10-bit codes one code early (TIFF early change)', () => {
    // 253 literals after Clear define codes 258..510; once 510 is defined (next free 511) the
    // decoder reads 10-bit codes. 1 + 253 literals (254 codes of 9 bits), then two 10-bit ones.
    const literals = Array.from({ length: 254 }, (_, i) => i);
    const codes: [number, number][] = [[256, 9], ...literals.map((v) => [v, 9] as [number, number])];
    codes.push([300, 10], [257, 10]); // 300 = literals[42] + literals[43]
    const out = decodeLzw(pack(codes), 256);
    expect([...out.subarray(0, 254)]).toEqual(literals);
    expect([...out.subarray(254)]).toEqual([42, 43]);
  });

  it('stops at the expected length and ignores the rest', () => {
    const codes = [256, 1, 2, 3, 4, 5, 257].map((c) => [c, 9] as const);
    expect([...decodeLzw(pack(codes), 3)]).toEqual([1, 2, 3]);
  });

  it('rejects data that ends early, undefined codes and old-style LZW', () => {
    const short = pack([256, 1, 2, 257].map((c) => [c, 9] as const));
    expect(() => decodeLzw(short, 10)).toThrow(DecodeError);
    expect(() => decodeLzw(short.subarray(0, 2), 10)).toThrow(/ended/);
    expect(() =>
      decodeLzw(
        pack([
          [256, 9],
          [1, 9],
          [400, 9],
        ]),
        10,
      ),
    ).toThrow(/not yet defined/);
    expect(() =>
      decodeLzw(
        pack([
          [256, 9],
          [300, 9],
        ]),
        10,
      ),
    ).toThrow(/follows a Clear/);
    expect(() => decodeLzw(Uint8Array.of(0x00, 0x01, 0x02), 10)).toThrow(UnsupportedFormat);
  });

  it('never throws anything but DecodeError on random input', () => {
    let seed = 99;
    const outcomes = { decoded: 0, decodeError: 0 };
    for (let round = 0; round < 200; round++) {
      const bytes = Uint8Array.from({ length: 64 + round }, () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed >> 23;
      });
      bytes[0] = 0x80; // a Clear code first, so decoding gets going
      try {
        const out = decodeLzw(bytes, 4096);
        expect(out.length).toBeLessThanOrEqual(4096);
        outcomes.decoded++;
      } catch (e) {
        expect(e).toBeInstanceOf(DecodeError);
        outcomes.decodeError++;
      }
    }
    // Every round asserted once (today all 200 are refused with a DecodeError).
    expect(outcomes.decoded + outcomes.decodeError).toBe(200);
    expect.assertions(201);
  });
});
