// NIfTI volumes: read a whole .nii / .nii.gz into a `Volume` (Float32 after scl_slope/inter),
// read only the header of a stored object, and write a mask as .nii.gz with the source's geometry
// (sform and qform fields copied as stored, so nibabel reads back the same affine bit for bit).
//
//   parseNiftiHeader(bytes) (nifti-header.ts) -> header, affine, geometry
//   readNiftiVolume(bytes)                    -> Volume
//   encodeNiftiMask(volume, mask)             -> .nii.gz bytes
//   encodeNiftiVolume(volume)                 -> .nii.gz bytes (int16 or float32 values)

import { gunzipSync, gzipSync } from 'node:zlib';
import { BadRequest, CorruptFile, UnsupportedFormat } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { affineToQuaternion } from './affine.js';
import {
  NIFTI_DATATYPE_BYTES,
  type NiftiGeometry,
  type NiftiHeader,
  isGzip,
  niftiScaling,
  parseNiftiHeader,
} from './nifti-header.js';
import type { Volume } from './volume.js';

export { parseNiftiHeader, type NiftiHeader, type NiftiGeometry } from './nifti-header.js';

export interface ReadNiftiOptions {
  /** Largest number of voxels accepted (default 2^28, 1 GiB as Float32). */
  maxVoxels?: number;
}

const DEFAULT_MAX_VOXELS = 2 ** 28;

/**
 * Reads only the header of a stored NIfTI object: the first 64 KiB (plain or gzip; a truncated
 * gzip prefix is enough). For catalog indexing.
 */
export async function readNiftiHeader(source: ByteSource, signal?: AbortSignal): Promise<NiftiHeader> {
  const head = await source.read(0, Math.min(source.size, 64 * 1024), { purpose: 'metadata', signal });
  return parseNiftiHeader(head);
}

/** The 3D dimensions of a header; throws `UnsupportedFormat` for 4D+ data (dim[4..7] > 1). */
export function volumeDims(header: NiftiHeader): [number, number, number] {
  const { dim } = header;
  for (let i = 4; i <= dim[0]; i++) {
    if (dim[i] > 1) {
      throw new UnsupportedFormat(
        `NIfTI: ${dim[0]}D data (dim = ${dim.slice(1, dim[0] + 1).join('x')}); only 3D volumes are supported`,
      );
    }
  }
  const at = (i: number) => (i <= dim[0] ? dim[i] : 1);
  return [at(1), at(2), at(3)];
}

/** Reads a whole .nii or .nii.gz file's bytes into a Float32 volume (values scaled). */
export function readNiftiVolume(bytes: Uint8Array, options: ReadNiftiOptions = {}): Volume {
  const header = parseNiftiHeader(bytes.subarray(0, Math.min(bytes.length, 64 * 1024)));
  const dims = volumeDims(header);
  const count = dims[0] * dims[1] * dims[2];
  const max = options.maxVoxels ?? DEFAULT_MAX_VOXELS;
  if (count > max)
    throw new BadRequest(`NIfTI: ${dims.join('x')} = ${count} voxels exceeds the limit of ${max}`);
  const size = NIFTI_DATATYPE_BYTES.get(header.datatype);
  if (size === undefined) throw new UnsupportedFormat(`NIfTI: datatype ${header.datatype} is not supported`);
  let raw: Uint8Array;
  try {
    raw = isGzip(bytes) ? gunzipSync(bytes) : bytes;
  } catch (e) {
    throw new CorruptFile(`NIfTI: gzip stream is corrupt: ${(e as Error).message}`, { cause: e });
  }
  const start = header.voxOffset;
  if (start + count * size > raw.length) {
    throw new CorruptFile(
      `NIfTI: voxel data truncated (need ${start + count * size} bytes, have ${raw.length})`,
    );
  }
  const data = decodeVoxels(raw, start, count, header);
  return { dims, affine: header.affine, data, source: { kind: 'nifti', geometry: header.geometry } };
}

function decodeVoxels(raw: Uint8Array, start: number, count: number, header: NiftiHeader): Float32Array {
  const view = new DataView(raw.buffer, raw.byteOffset + start, raw.byteLength - start);
  const le = header.littleEndian;
  const read: (i: number) => number = (() => {
    switch (header.datatype) {
      case 2:
        return (i: number) => view.getUint8(i);
      case 256:
        return (i: number) => view.getInt8(i);
      case 4:
        return (i: number) => view.getInt16(2 * i, le);
      case 512:
        return (i: number) => view.getUint16(2 * i, le);
      case 8:
        return (i: number) => view.getInt32(4 * i, le);
      case 768:
        return (i: number) => view.getUint32(4 * i, le);
      case 16:
        return (i: number) => view.getFloat32(4 * i, le);
      case 64:
        return (i: number) => view.getFloat64(8 * i, le);
      case 1024:
        return (i: number) => Number(view.getBigInt64(8 * i, le));
      default:
        return (i: number) => Number(view.getBigUint64(8 * i, le));
    }
  })();
  const { slope, inter } = niftiScaling(header);
  const out = new Float32Array(count);
  if (slope === 1 && inter === 0) for (let i = 0; i < count; i++) out[i] = read(i);
  else for (let i = 0; i < count; i++) out[i] = read(i) * slope + inter;
  return out;
}

/**
 * The NIfTI geometry fields for a volume: the source's own fields when it was a NIfTI file (so
 * the mask carries the same sform and qform), else both derived from the affine with code 1
 * (scanner anatomical, as dcm2niix writes for DICOM input).
 */
export function niftiGeometryFor(volume: Pick<Volume, 'affine' | 'source'>): NiftiGeometry {
  if (volume.source.kind === 'nifti') return volume.source.geometry;
  const q = affineToQuaternion(volume.affine);
  return {
    qformCode: 1,
    sformCode: 1,
    quaternion: q,
    srow: volume.affine.slice(0, 12),
    pixdim: [q.qfac, q.dx, q.dy, q.dz, 0, 0, 0, 0],
    xyztUnits: 2,
  };
}

/**
 * Encodes a label mask (uint8, one value per voxel, same index order as the volume) as a
 * little-endian NIfTI-1 .nii.gz with the volume's dimensions and geometry.
 */
export function encodeNiftiMask(
  volume: Pick<Volume, 'dims' | 'affine' | 'source'>,
  mask: Uint8Array,
  description = 'medstream segmentation',
): Uint8Array {
  const [nx, ny, nz] = volume.dims;
  if (mask.length !== nx * ny * nz) {
    throw new BadRequest(`mask has ${mask.length} voxels, the volume ${nx}x${ny}x${nz} = ${nx * ny * nz}`);
  }
  return gzipSync(encodeNifti(volume, 2, 8, mask, description));
}

/**
 * A volume's values as a little-endian NIfTI-1 .nii.gz: int16 when every value is an integer in
 * its range (CT in HU after the Modality LUT), else float32; scl_slope 1, the volume's geometry.
 */
export function encodeNiftiVolume(
  volume: Pick<Volume, 'dims' | 'affine' | 'source' | 'data'>,
  description = 'medstream volume',
  level = 1,
): Uint8Array {
  const { data } = volume;
  let integral = true;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v !== Math.round(v) || v < -32768 || v > 32767) {
      integral = false;
      break;
    }
  }
  const bytes = integral
    ? new Uint8Array(Int16Array.from(data).buffer)
    : new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  return gzipSync(encodeNifti(volume, integral ? 4 : 16, integral ? 16 : 32, bytes, description), { level });
}

/** Header (352 bytes, single-file n+1) and voxel bytes of a NIfTI-1 file, uncompressed. */
function encodeNifti(
  volume: Pick<Volume, 'dims' | 'affine' | 'source'>,
  datatype: number,
  bitpix: number,
  voxels: Uint8Array,
  description: string,
): Uint8Array {
  const [nx, ny, nz] = volume.dims;
  const g = niftiGeometryFor(volume);
  const header = new Uint8Array(352);
  const v = new DataView(header.buffer);
  v.setInt32(0, 348, true);
  const dim = [3, nx, ny, nz, 1, 1, 1, 1];
  dim.forEach((d, i) => v.setInt16(40 + 2 * i, d, true));
  v.setInt16(70, datatype, true);
  v.setInt16(72, bitpix, true);
  const pixdim = g.pixdim.slice(0, 8);
  pixdim[0] = g.quaternion.qfac < 0 ? -1 : 1;
  pixdim.forEach((p, i) => v.setFloat32(76 + 4 * i, p, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  v.setFloat32(116, 0, true);
  v.setUint8(123, g.xyztUnits & 0xff);
  const descrip = new TextEncoder().encode(description.slice(0, 79));
  header.set(descrip, 148);
  v.setInt16(252, g.qformCode, true);
  v.setInt16(254, g.sformCode, true);
  const q = g.quaternion;
  [q.b, q.c, q.d, q.qx, q.qy, q.qz].forEach((x, i) => v.setFloat32(256 + 4 * i, x, true));
  g.srow.forEach((x, i) => v.setFloat32(280 + 4 * i, x, true));
  header.set(new TextEncoder().encode('n+1\0'), 344);
  const file = new Uint8Array(352 + voxels.length);
  file.set(header, 0);
  file.set(voxels, 352);
  return file;
}
