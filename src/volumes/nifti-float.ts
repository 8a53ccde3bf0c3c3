// Float NIfTI volumes (float32, float64) as 16-bit signed DICOM frames: one streaming pass over
// the voxels finds the finite min..max (`floatRange`, at index time), `floatRescale` picks the
// per-volume slope/intercept that maps it onto -32768..32767 (slope 1, intercept 0 when every
// value is an integer in int16 range, so those stay exact), `quantizeFloatSlice` applies it to a
// slice. NaN and ±Inf voxels become the volume's minimum. Memory is bounded by one read chunk.

import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { CorruptFile } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import type { NiftiHeader } from './nifti-header.js';

/** NIfTI datatypes served through `quantizeFloatSlice`, with their sample sizes. */
export const FLOAT_BYTES: Record<number, number> = { 16: 4, 64: 8 };
const CHUNK = 4 * 1024 * 1024;

export interface FloatRange {
  /** Finite minimum and maximum of the stored values (0, 0 when none is finite). */
  min: number;
  max: number;
  /** Whether every finite value is an integer. */
  integral: boolean;
}

/** Stored value = slope * q + intercept for the int16 sample q (before the header's scl_*). */
export interface FloatRescale {
  slope: number;
  intercept: number;
}

/** What a DICOM DS can carry (the catalog writes DS values with 10 significant digits). */
const ds = (v: number) => Number(v.toPrecision(10));

/** The slope/intercept that maps `range` onto the int16 samples. */
export function floatRescale(range: FloatRange): FloatRescale {
  const { min, max, integral } = range;
  if (integral && min >= -32768 && max <= 32767) return { slope: 1, intercept: 0 };
  if (max === min) return { slope: 1, intercept: ds(min) };
  // 65534 steps, not 65535: room for the DS rounding of slope and intercept at both ends.
  const slope = ds((max - min) / 65534);
  return { slope, intercept: ds(min + 32767 * slope) };
}

/** One stored sample per voxel of `bytes` (float32 / float64 as the header says) to int16 (LE bytes). */
export function quantizeFloatSlice(
  bytes: Uint8Array,
  datatype: number,
  littleEndian: boolean,
  rescale: FloatRescale,
  minimum: number,
): Uint8Array {
  const size = FLOAT_BYTES[datatype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = Math.floor(bytes.length / size);
  const out = Buffer.alloc(count * 2);
  const { slope, intercept } = rescale;
  for (let i = 0; i < count; i++) {
    let v = size === 4 ? view.getFloat32(i * 4, littleEndian) : view.getFloat64(i * 8, littleEndian);
    if (!Number.isFinite(v)) v = minimum;
    const q = Math.round((v - intercept) / slope);
    out.writeInt16LE(q < -32768 ? -32768 : q > 32767 ? 32767 : q, i * 2);
  }
  return out;
}

/** The voxel bytes of a volume, in chunks (gzip inflated on the fly), ending after `length` bytes. */
async function* voxelChunks(
  source: ByteSource,
  header: NiftiHeader,
  length: number,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array> {
  if (!header.gzip) {
    if (header.voxOffset + length > source.size)
      throw new CorruptFile(`${source.key}: the voxels lie past the end of the volume`);
    for (let at = 0; at < length; at += CHUNK) {
      const n = Math.min(CHUNK, length - at);
      yield await source.read(header.voxOffset + at, n, { purpose: 'data', signal });
    }
    return;
  }
  async function* compressed() {
    for (let at = 0; at < source.size; at += CHUNK)
      yield Buffer.from(
        await source.read(at, Math.min(CHUNK, source.size - at), { purpose: 'data', signal }),
      );
  }
  const gunzip = Readable.from(compressed()).pipe(createGunzip());
  let position = 0;
  const end = header.voxOffset + length;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      const from = Math.max(0, header.voxOffset - position);
      const to = Math.min(chunk.length, end - position);
      position += chunk.length;
      if (to > from) yield chunk.subarray(from, to);
      if (position >= end) return; // what follows the voxels (or a gzip bomb) is never inflated
    }
  } catch (e) {
    throw new CorruptFile(`${source.key}: the compressed stream cannot be read: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    gunzip.destroy();
  }
  if (position < end) throw new CorruptFile(`${source.key}: the voxels end before the volume does`);
}

/** Finite min/max of a float volume's stored values: one full read of the object (streaming). */
export async function floatRange(
  source: ByteSource,
  header: NiftiHeader,
  voxels: number,
  signal?: AbortSignal,
): Promise<FloatRange> {
  const size = FLOAT_BYTES[header.datatype];
  if (size === undefined) throw new Error(`NIfTI datatype ${header.datatype} is not float32 or float64`);
  let min = Infinity;
  let max = -Infinity;
  let integral = true;
  let carry = Buffer.alloc(0);
  for await (const chunk of voxelChunks(source, header, voxels * size, signal)) {
    const bytes = carry.length ? Buffer.concat([carry, chunk]) : Buffer.from(chunk);
    const whole = bytes.length - (bytes.length % size);
    const view = new DataView(bytes.buffer, bytes.byteOffset, whole);
    for (let at = 0; at < whole; at += size) {
      const v =
        size === 4 ? view.getFloat32(at, header.littleEndian) : view.getFloat64(at, header.littleEndian);
      if (!Number.isFinite(v)) continue;
      if (v < min) min = v;
      if (v > max) max = v;
      if (integral && !Number.isInteger(v)) integral = false;
    }
    carry = Buffer.from(bytes.subarray(whole));
  }
  return min === Infinity ? { min: 0, max: 0, integral: true } : { min, max, integral };
}
