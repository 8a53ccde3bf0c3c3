// Float NIfTI to int16: the index-time min/max pass over plain and gzip voxels (samples split
// across inflated chunks, NaN/Inf skipped, truncation a CorruptFile), the rescale chosen from the
// range, and the quantisation round trip within slope/2.

import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { CorruptFile } from '../../src/errors.js';
import type { NiftiHeader } from '../../src/volumes/nifti-header.js';
import { floatRange, floatRescale, quantizeFloatSlice } from '../../src/volumes/nifti-float.js';
import { MemorySource } from '../support/memory-source.js';

/** A stand-in file: `voxOffset` bytes of header, then the samples (only what floatRange reads). */
function volume(values: number[], options: { datatype: 16 | 64; voxOffset: number; littleEndian: boolean }) {
  const size = options.datatype === 16 ? 4 : 8;
  const bytes = Buffer.alloc(options.voxOffset + values.length * size, 0x7f);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  values.forEach((v, i) => {
    const at = options.voxOffset + i * size;
    if (size === 4) view.setFloat32(at, v, options.littleEndian);
    else view.setFloat64(at, v, options.littleEndian);
  });
  return bytes;
}
const header = (h: Pick<NiftiHeader, 'datatype' | 'voxOffset' | 'littleEndian' | 'gzip'>) => h as NiftiHeader;

describe('float NIfTI range and rescale', () => {
  it('finds the finite min/max of gzip voxels whose samples straddle inflated chunks', async () => {
    const values = Array.from({ length: 50_000 }, (_, i) => Math.fround(Math.sin(i) * 1234.5 + i / 100));
    values[10] = NaN;
    values[20_000] = Infinity;
    values[30_000] = -Infinity;
    const finite = values.filter(Number.isFinite);
    const expected = { min: Math.min(...finite), max: Math.max(...finite), integral: false };
    // 354: the 16 KiB inflate chunks cut float32 samples in two.
    const shape = { datatype: 16 as const, voxOffset: 354, littleEndian: true };
    const gz = new MemorySource(gzipSync(volume(values, shape)));
    expect(await floatRange(gz, header({ ...shape, gzip: true }), values.length)).toEqual(expected);
    const big = { datatype: 64 as const, voxOffset: 352, littleEndian: false };
    const plain = new MemorySource(volume(values, big));
    expect(await floatRange(plain, header({ ...big, gzip: false }), values.length)).toEqual(expected);
  });

  it('keeps integer-valued volumes in int16 range exact, scales the others onto the full range', () => {
    expect(floatRescale({ min: -32768, max: 32767, integral: true })).toEqual({ slope: 1, intercept: 0 });
    expect(floatRescale({ min: 7.25, max: 7.25, integral: false })).toEqual({ slope: 1, intercept: 7.25 });
    for (const range of [
      { min: 0, max: 40_000, integral: true },
      { min: -1e-3, max: 5e-3, integral: false },
      { min: 1000.5, max: 1001.5, integral: false },
    ]) {
      const rescale = floatRescale(range);
      expect(rescale.slope).toBeLessThanOrEqual((range.max - range.min) / 65000);
      const samples = [range.min, range.min + (range.max - range.min) / 3, range.max, NaN, Infinity];
      const bytes = volume(samples, { datatype: 64, voxOffset: 0, littleEndian: true });
      const q = new Int16Array(quantizeFloatSlice(bytes, 64, true, rescale, range.min).buffer.slice(0));
      expect(q[0]).toBeLessThan(-32000);
      expect(q[2]).toBeGreaterThan(32000);
      samples.forEach((v, i) => {
        const want = Number.isFinite(v) ? v : range.min; // NaN/Inf: the minimum
        expect(Math.abs(q[i] * rescale.slope + rescale.intercept - want)).toBeLessThanOrEqual(
          rescale.slope / 2,
        );
      });
    }
  });

  it('answers CorruptFile for truncated volumes, plain or gzip', async () => {
    const values = Array.from({ length: 1000 }, (_, i) => i + 0.5);
    const shape = { datatype: 16 as const, voxOffset: 352, littleEndian: true };
    const bytes = volume(values, shape);
    const short = new MemorySource(bytes.subarray(0, bytes.length - 4));
    await expect(floatRange(short, header({ ...shape, gzip: false }), 1000)).rejects.toBeInstanceOf(
      CorruptFile,
    );
    const gz = gzipSync(bytes);
    const cut = new MemorySource(gz.subarray(0, gz.length - 20));
    await expect(floatRange(cut, header({ ...shape, gzip: true }), 1000)).rejects.toBeInstanceOf(CorruptFile);
    const fewer = new MemorySource(gzipSync(bytes.subarray(0, bytes.length - 400)));
    await expect(floatRange(fewer, header({ ...shape, gzip: true }), 1000)).rejects.toBeInstanceOf(
      CorruptFile,
    );
  });
});
