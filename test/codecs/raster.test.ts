import { describe, expect, it } from 'vitest';
import { undoHorizontalPredictor } from '../../src/codecs/predictor.js';
import { sampleLayout, samplesToImage } from '../../src/codecs/raster.js';
import { Compression, Photometric } from '../../src/codecs/types.js';
import type { TileEncoding } from '../../src/codecs/types.js';
import { DecodeError, UnsupportedFormat } from '../../src/errors.js';

const base: TileEncoding = {
  compression: Compression.None,
  photometric: Photometric.RGB,
  samplesPerPixel: 3,
  bitsPerSample: [8, 8, 8],
  sampleFormat: 1,
  planarConfiguration: 1,
  predictor: 1,
};

function decode(bytes: number[], encoding: TileEncoding, width: number, height: number) {
  const layout = sampleLayout(encoding, width, height);
  return samplesToImage(Uint8Array.from(bytes), encoding, layout, width, height);
}

describe('horizontal predictor', () => {
  it('undoes differencing per sample, per row, wrapping modulo 2^bits', () => {
    // 3 pixels x 2 rows of RGB: row 0 starts (10,20,30) then +1,+2,+3 twice; row 1 wraps.
    const samples = Uint8Array.from([10, 20, 30, 1, 2, 3, 1, 2, 3, 250, 0, 0, 10, 0, 0, 1, 0, 0]);
    undoHorizontalPredictor(samples, 3, 2, 3);
    expect([...samples]).toEqual([10, 20, 30, 11, 22, 33, 12, 24, 36, 250, 0, 0, 4, 0, 0, 5, 0, 0]);
    const wide = Uint16Array.from([65000, 1000, 100]);
    undoHorizontalPredictor(wide, 3, 1, 1);
    expect([...wide]).toEqual([65000, 464, 564]);
  });
});

describe('samplesToImage', () => {
  it('passes 8-bit RGB through and applies predictor 2', () => {
    const image = decode([1, 2, 3, 1, 1, 1], { ...base, predictor: 2 }, 2, 1);
    expect([...image.data]).toEqual([1, 2, 3, 2, 3, 4]);
    expect(image.channels).toBe(3);
  });

  it('keeps the high byte of 16-bit samples in either byte order', () => {
    const gray16: TileEncoding = {
      ...base,
      photometric: Photometric.MinIsBlack,
      samplesPerPixel: 1,
      bitsPerSample: [16],
    };
    expect([...decode([0x34, 0x12, 0xff, 0xab], gray16, 2, 1).data]).toEqual([0x12, 0xab]);
    expect([...decode([0x12, 0x34, 0xab, 0xff], { ...gray16, littleEndian: false }, 2, 1).data]).toEqual([
      0x12, 0xab,
    ]);
    // Predictor on 16-bit values, before reduction: 0x0100 + 0x0100 = 0x0200.
    expect([...decode([0x00, 0x01, 0x00, 0x01], { ...gray16, predictor: 2 }, 2, 1).data]).toEqual([1, 2]);
  });

  it('inverts MinIsWhite, drops unspecified extra samples, keeps and un-premultiplies alpha', () => {
    const gray: TileEncoding = {
      ...base,
      photometric: Photometric.MinIsWhite,
      samplesPerPixel: 1,
      bitsPerSample: [8],
    };
    expect([...decode([0, 200], gray, 2, 1).data]).toEqual([255, 55]);
    const rgbx: TileEncoding = {
      ...base,
      samplesPerPixel: 4,
      bitsPerSample: [8, 8, 8, 8],
      extraSamples: [0],
    };
    const rgb = decode([1, 2, 3, 9], rgbx, 1, 1);
    expect([rgb.channels, ...rgb.data]).toEqual([3, 1, 2, 3]);
    const premultiplied = decode([50, 100, 0, 128], { ...rgbx, extraSamples: [1] }, 1, 1);
    expect([premultiplied.channels, ...premultiplied.data]).toEqual([4, 100, 199, 0, 128]);
    const grayAlpha: TileEncoding = {
      ...gray,
      photometric: Photometric.MinIsBlack,
      samplesPerPixel: 2,
      bitsPerSample: [8, 8],
      extraSamples: [2],
    };
    expect([...decode([7, 200], grayAlpha, 1, 1).data]).toEqual([7, 7, 7, 200]);
  });

  it('rejects short data and layouts it cannot render', () => {
    expect(() => decode([1, 2, 3], base, 2, 1)).toThrow(DecodeError);
    expect(() => sampleLayout({ ...base, bitsPerSample: [4, 4, 4] }, 1, 1)).toThrow(UnsupportedFormat);
    expect(() => sampleLayout({ ...base, sampleFormat: 3, bitsPerSample: [16, 16, 16] }, 1, 1)).toThrow(
      /floating/,
    );
    expect(() => sampleLayout({ ...base, planarConfiguration: 2 }, 1, 1)).toThrow(/planar/);
    expect(() => sampleLayout({ ...base, predictor: 3 }, 1, 1)).toThrow(/predictor 3/);
    expect(() => sampleLayout({ ...base, photometric: Photometric.YCbCr }, 1, 1)).toThrow(/photometric/);
    expect(() =>
      sampleLayout({ ...base, photometric: Photometric.Palette, samplesPerPixel: 1 }, 1, 1),
    ).toThrow(UnsupportedFormat);
  });
});
