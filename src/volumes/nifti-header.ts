// NIfTI-1 and NIfTI-2 header parsing from bytes (either byte order, plain or gzip-compressed):
// dimensions, data type, scaling, the qform/sform fields and the voxel -> RAS affine chosen as
// nibabel chooses it. The radiology catalog indexes NIfTI objects with this alone, from the
// first few KiB of an object, without reading voxels (see `readNiftiHeader` in nifti.ts).
//
// Spec: https://nifti.nimh.nih.gov/pub/dist/src/niftilib/nifti1.h and nifti2.h.

import { gunzipSync, constants as zlibConstants } from 'node:zlib';
import { CorruptFile, UnsupportedFormat } from '../errors.js';
import { type Affine, type Quaternion, quaternionToAffine } from './affine.js';

/** The geometry fields of a NIfTI header, kept as stored so a mask can be written with the same ones. */
export interface NiftiGeometry {
  /** 0 unknown, 1 scanner, 2 aligned, 3 Talairach, 4 MNI, 5 template. */
  qformCode: number;
  sformCode: number;
  /** quatern_b/c/d, qoffset_x/y/z, pixdim[1..3] and qfac (pixdim[0]). */
  quaternion: Quaternion;
  /** srow_x, srow_y, srow_z (12 numbers, row-major). */
  srow: number[];
  /** pixdim[0..7] as stored. */
  pixdim: number[];
  /** xyzt_units as stored (2 = mm, 8 = s). */
  xyztUnits: number;
}

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** The header length: 348 (NIfTI-1) or 540 (NIfTI-2). */
  headerBytes: number;
  /** Whether the bytes given were gzip-compressed (a `.nii.gz`). */
  gzip: boolean;
  /** dim[0..7] as stored: dim[0] is the number of dimensions used. */
  dim: number[];
  /** NIfTI datatype code (2 uint8, 4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16, 768 uint32, 1024 int64, 1280 uint64). */
  datatype: number;
  bitpix: number;
  /** Byte offset of the voxels in the (uncompressed) file. */
  voxOffset: number;
  /** Scaling applied to stored values: value = stored * slope + inter (slope 0 or non-finite = none). */
  sclSlope: number;
  sclInter: number;
  description: string;
  intentCode: number;
  geometry: NiftiGeometry;
  /**
   * Voxel (i, j, k) -> RAS millimetres, as nibabel's `img.affine`: the sform when sform_code > 0,
   * else the qform when qform_code > 0, else nibabel's base affine (pixdim scaling, x flipped,
   * origin at the centre) for headers that declare neither.
   */
  affine: Affine;
  /** Which of the three the affine came from. */
  affineSource: 'sform' | 'qform' | 'pixdim';
}

/** Bytes per voxel for the data types this reader supports. */
export const NIFTI_DATATYPE_BYTES: ReadonlyMap<number, number> = new Map([
  [2, 1],
  [4, 2],
  [8, 4],
  [16, 4],
  [64, 8],
  [256, 1],
  [512, 2],
  [768, 4],
  [1024, 8],
  [1280, 8],
]);

const NIFTI1_BYTES = 348;
const NIFTI2_BYTES = 540;

/** Whether the bytes start like gzip (RFC 1952 magic). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Decompresses as much of a (possibly truncated) gzip stream as the bytes allow: enough to parse a
 * header from the first few KiB of a `.nii.gz` without fetching the whole object.
 */
export function gunzipPrefix(bytes: Uint8Array): Uint8Array {
  try {
    return gunzipSync(bytes, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch (e) {
    throw new CorruptFile(`NIfTI: gzip stream is corrupt: ${(e as Error).message}`, { cause: e });
  }
}

/** Whether the (uncompressed) bytes look like a NIfTI-1 or NIfTI-2 header. */
export function looksLikeNifti(bytes: Uint8Array): boolean {
  if (bytes.length < NIFTI1_BYTES) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = view.getInt32(0, true);
  const be = view.getInt32(0, false);
  return le === NIFTI1_BYTES || be === NIFTI1_BYTES || le === NIFTI2_BYTES || be === NIFTI2_BYTES;
}

/**
 * Parses a NIfTI-1 or NIfTI-2 header. `bytes` are the start of the file, plain or gzip (at least
 * the header: 348 / 540 bytes uncompressed). Throws `UnsupportedFormat` for anything else
 * (ANALYZE 7.5 without the NIfTI magic included) and `CorruptFile` for impossible values.
 */
export function parseNiftiHeader(bytes: Uint8Array): NiftiHeader {
  const gzip = isGzip(bytes);
  const raw = gzip ? gunzipPrefix(bytes) : bytes;
  if (raw.length < NIFTI1_BYTES) throw new CorruptFile(`NIfTI: header truncated (${raw.length} bytes)`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let littleEndian: boolean;
  let size = view.getInt32(0, true);
  if (size === NIFTI1_BYTES || size === NIFTI2_BYTES) littleEndian = true;
  else {
    size = view.getInt32(0, false);
    if (size !== NIFTI1_BYTES && size !== NIFTI2_BYTES) {
      throw new UnsupportedFormat(
        'not a NIfTI file (sizeof_hdr is neither 348 nor 540 in either byte order)',
      );
    }
    littleEndian = false;
  }
  if (size === NIFTI2_BYTES && raw.length < NIFTI2_BYTES) {
    throw new CorruptFile(`NIfTI-2: header truncated (${raw.length} bytes)`);
  }
  const header = size === NIFTI1_BYTES ? parseNifti1(view, littleEndian) : parseNifti2(view, littleEndian);
  return { ...header, gzip };
}

type Parsed = Omit<NiftiHeader, 'gzip' | 'affine' | 'affineSource'>;

function text(view: DataView, offset: number, length: number): string {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, length);
  const end = bytes.indexOf(0);
  return new TextDecoder('latin1').decode(end < 0 ? bytes : bytes.subarray(0, end)).trim();
}

function parseNifti1(view: DataView, le: boolean): NiftiHeader {
  const magic = text(view, 344, 4);
  if (magic !== 'n+1' && magic !== 'ni1') {
    throw new UnsupportedFormat(`not a NIfTI-1 file (magic "${magic}"; ANALYZE 7.5 is not supported)`);
  }
  const i16 = (o: number) => view.getInt16(o, le);
  const f32 = (o: number) => view.getFloat32(o, le);
  const dim = Array.from({ length: 8 }, (_, i) => i16(40 + 2 * i));
  const pixdim = Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i));
  const parsed: Parsed = {
    version: 1,
    littleEndian: le,
    headerBytes: NIFTI1_BYTES,
    dim,
    datatype: i16(70),
    bitpix: i16(72),
    voxOffset: f32(108),
    sclSlope: f32(112),
    sclInter: f32(116),
    description: text(view, 148, 80),
    intentCode: i16(68),
    geometry: {
      qformCode: i16(252),
      sformCode: i16(254),
      quaternion: quaternionFields(pixdim, [f32(256), f32(260), f32(264), f32(268), f32(272), f32(276)]),
      srow: Array.from({ length: 12 }, (_, i) => f32(280 + 4 * i)),
      pixdim,
      xyztUnits: view.getUint8(123),
    },
  };
  // A single-file NIfTI-1 stores voxels from vox_offset (>= 352); some writers leave it 0.
  if (magic === 'n+1' && parsed.voxOffset < 352) parsed.voxOffset = 352;
  return finish(parsed);
}

function parseNifti2(view: DataView, le: boolean): NiftiHeader {
  const magic = text(view, 4, 4);
  if (magic !== 'n+2' && magic !== 'ni2')
    throw new UnsupportedFormat(`not a NIfTI-2 file (magic "${magic}")`);
  const i64 = (o: number) => Number(view.getBigInt64(o, le));
  const i32 = (o: number) => view.getInt32(o, le);
  const f64 = (o: number) => view.getFloat64(o, le);
  const dim = Array.from({ length: 8 }, (_, i) => i64(16 + 8 * i));
  const pixdim = Array.from({ length: 8 }, (_, i) => f64(104 + 8 * i));
  const parsed: Parsed = {
    version: 2,
    littleEndian: le,
    headerBytes: NIFTI2_BYTES,
    dim,
    datatype: view.getInt16(12, le),
    bitpix: view.getInt16(14, le),
    voxOffset: i64(168),
    sclSlope: f64(176),
    sclInter: f64(184),
    description: text(view, 240, 80),
    intentCode: i32(504),
    geometry: {
      qformCode: i32(344),
      sformCode: i32(348),
      quaternion: quaternionFields(pixdim, [f64(352), f64(360), f64(368), f64(376), f64(384), f64(392)]),
      srow: Array.from({ length: 12 }, (_, i) => f64(400 + 8 * i)),
      pixdim,
      xyztUnits: i32(500),
    },
  };
  if (magic === 'n+2' && parsed.voxOffset < 544) parsed.voxOffset = 544;
  return finish(parsed);
}

function quaternionFields(pixdim: number[], q: number[]): Quaternion {
  return {
    b: q[0],
    c: q[1],
    d: q[2],
    qx: q[3],
    qy: q[4],
    qz: q[5],
    dx: pixdim[1],
    dy: pixdim[2],
    dz: pixdim[3],
    qfac: pixdim[0] < 0 ? -1 : 1,
  };
}

function finish(parsed: Parsed): NiftiHeader {
  const { dim } = parsed;
  if (!(dim[0] >= 1 && dim[0] <= 7)) throw new CorruptFile(`NIfTI: dim[0] = ${dim[0]} is not 1..7`);
  for (let i = 1; i <= dim[0]; i++) {
    if (!(dim[i] >= 1)) throw new CorruptFile(`NIfTI: dim[${i}] = ${dim[i]} is not positive`);
  }
  if (!Number.isFinite(parsed.voxOffset) || parsed.voxOffset < 0) {
    throw new CorruptFile(`NIfTI: vox_offset ${parsed.voxOffset} is invalid`);
  }
  const g = parsed.geometry;
  let affine: Affine;
  let affineSource: NiftiHeader['affineSource'];
  if (g.sformCode > 0) {
    affine = [...g.srow, 0, 0, 0, 1];
    affineSource = 'sform';
  } else if (g.qformCode > 0) {
    affine = quaternionToAffine(g.quaternion);
    affineSource = 'qform';
  } else {
    affine = baseAffine(dim, g.pixdim);
    affineSource = 'pixdim';
  }
  return { ...parsed, gzip: false, affine, affineSource };
}

/** nibabel's `get_base_affine`: spacing from pixdim, x flipped, the volume centred on the origin. */
function baseAffine(dim: number[], pixdim: number[]): Affine {
  const n = [1, 2, 3].map((i) => (i <= dim[0] ? dim[i] : 1));
  const z = [1, 2, 3].map((i) => (i <= dim[0] && pixdim[i] > 0 ? pixdim[i] : 1));
  const sign = [-1, 1, 1];
  const m = new Array<number>(16).fill(0);
  for (let a = 0; a < 3; a++) {
    m[5 * a] = sign[a] * z[a];
    m[4 * a + 3] = -(((n[a] - 1) / 2) * z[a] * sign[a]);
  }
  m[15] = 1;
  return m;
}

/** The effective scaling (slope 0 or non-finite means none, nifti1.h). */
export function niftiScaling(header: NiftiHeader): { slope: number; inter: number } {
  const ok = Number.isFinite(header.sclSlope) && header.sclSlope !== 0;
  return {
    slope: ok ? header.sclSlope : 1,
    inter: ok && Number.isFinite(header.sclInter) ? header.sclInter : 0,
  };
}
