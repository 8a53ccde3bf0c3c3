// 4x4 affine helpers for volumes: voxel index (i, j, k) -> patient millimetres, RAS <-> LPS,
// NIfTI quaternions (qform) <-> rotation, and the DICOM per-slice geometry an affine implies
// (ImagePositionPatient, ImageOrientationPatient, PixelSpacing). Pure arithmetic, no I/O.

/** Row-major 4x4 matrix: `m[4 * row + col]`; the last row is always 0 0 0 1. */
export type Affine = number[];

/** The identity affine. */
export function identityAffine(): Affine {
  return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
}

/** A · B. */
export function multiplyAffine(a: Affine, b: Affine): Affine {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[4 * r + k] * b[4 * k + c];
      out[4 * r + c] = s;
    }
  }
  return out;
}

/** Maps a voxel index to millimetres. */
export function applyAffine(m: Affine, i: number, j: number, k: number): [number, number, number] {
  return [
    m[0] * i + m[1] * j + m[2] * k + m[3],
    m[4] * i + m[5] * j + m[6] * k + m[7],
    m[8] * i + m[9] * j + m[10] * k + m[11],
  ];
}

/**
 * RAS (NIfTI, nibabel) <-> LPS (DICOM): negate the first two output rows. Its own inverse.
 */
export function flipRasLps(m: Affine): Affine {
  const out = m.slice();
  for (let c = 0; c < 4; c++) {
    out[c] = -out[c];
    out[4 + c] = -out[4 + c];
  }
  return out;
}

/** Length of column `c` of the 3x3 part: the voxel spacing along array axis c. */
export function columnNorm(m: Affine, c: number): number {
  return Math.hypot(m[c], m[4 + c], m[8 + c]);
}

/** Unit column c of the 3x3 part (the direction of array axis c). */
export function columnDirection(m: Affine, c: number): [number, number, number] {
  const n = columnNorm(m, c) || 1;
  return [m[c] / n, m[4 + c] / n, m[8 + c] / n];
}

/** Whether two affines agree within `tol` millimetres per element. */
export function affinesEqual(a: Affine, b: Affine, tol = 1e-4): boolean {
  for (let i = 0; i < 16; i++) if (Math.abs(a[i] - b[i]) > tol * Math.max(1, Math.abs(a[i]))) return false;
  return true;
}

/** The NIfTI qform parameters (quatern_b/c/d, qoffset, pixdim[1..3] and qfac = pixdim[0]). */
export interface Quaternion {
  b: number;
  c: number;
  d: number;
  qx: number;
  qy: number;
  qz: number;
  dx: number;
  dy: number;
  dz: number;
  qfac: number;
}

/** The qform affine (RAS), NIfTI-1 "method 2" (nifti1.h, quatern_to_mat44). */
export function quaternionToAffine(q: Quaternion): Affine {
  const { b, c, d } = q;
  let a = 1 - (b * b + c * c + d * d);
  // Rounding can push a slightly negative; the spec treats |bcd| ≈ 1 as a 180° rotation.
  a = a < 1e-7 ? 0 : Math.sqrt(a);
  const qfac = q.qfac < 0 ? -1 : 1;
  const dx = q.dx > 0 ? q.dx : 1;
  const dy = q.dy > 0 ? q.dy : 1;
  const dz = (q.dz > 0 ? q.dz : 1) * qfac;
  return [
    (a * a + b * b - c * c - d * d) * dx,
    2 * (b * c - a * d) * dy,
    2 * (b * d + a * c) * dz,
    q.qx,
    2 * (b * c + a * d) * dx,
    (a * a + c * c - b * b - d * d) * dy,
    2 * (c * d - a * b) * dz,
    q.qy,
    2 * (b * d - a * c) * dx,
    2 * (c * d + a * b) * dy,
    (a * a + d * d - c * c - b * b) * dz,
    q.qz,
    0,
    0,
    0,
    1,
  ];
}

/**
 * The qform parameters of an affine whose 3x3 part is orthogonal up to column scaling
 * (nifti1_io's mat44_to_quatern without the polar decomposition: affines here come from
 * DICOM orientation vectors or NIfTI headers, which are orthogonal).
 */
export function affineToQuaternion(m: Affine): Quaternion {
  const dx = columnNorm(m, 0) || 1;
  const dy = columnNorm(m, 1) || 1;
  let dz = columnNorm(m, 2) || 1;
  const r = [
    [m[0] / dx, m[1] / dy, m[2] / dz],
    [m[4] / dx, m[5] / dy, m[6] / dz],
    [m[8] / dx, m[9] / dy, m[10] / dz],
  ];
  const det =
    r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) -
    r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0]) +
    r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
  let qfac = 1;
  if (det < 0) {
    qfac = -1;
    for (let row = 0; row < 3; row++) r[row][2] = -r[row][2];
  }
  let a = r[0][0] + r[1][1] + r[2][2] + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r[2][1] - r[1][2])) / a;
    c = (0.25 * (r[0][2] - r[2][0])) / a;
    d = (0.25 * (r[1][0] - r[0][1])) / a;
  } else {
    const xd = 1 + r[0][0] - (r[1][1] + r[2][2]);
    const yd = 1 + r[1][1] - (r[0][0] + r[2][2]);
    const zd = 1 + r[2][2] - (r[0][0] + r[1][1]);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r[0][1] + r[1][0])) / b;
      d = (0.25 * (r[0][2] + r[2][0])) / b;
      a = (0.25 * (r[2][1] - r[1][2])) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r[0][1] + r[1][0])) / c;
      d = (0.25 * (r[1][2] + r[2][1])) / c;
      a = (0.25 * (r[0][2] - r[2][0])) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r[0][2] + r[2][0])) / d;
      c = (0.25 * (r[1][2] + r[2][1])) / d;
      a = (0.25 * (r[1][0] - r[0][1])) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  dz = dz > 0 ? dz : 1;
  return { b, c, d, qx: m[3], qy: m[7], qz: m[11], dx, dy, dz, qfac };
}

/** DICOM geometry of one slice (all in LPS millimetres, as in the DICOM attributes). */
export interface SliceGeometry {
  /** ImagePositionPatient: centre of the first transmitted voxel (column 0, row 0). */
  imagePositionPatient: [number, number, number];
  /** ImageOrientationPatient: direction of increasing column index, then of increasing row index. */
  imageOrientationPatient: [number, number, number, number, number, number];
  /** PixelSpacing: [between rows (along j), between columns (along i)]. */
  pixelSpacing: [number, number];
}

/**
 * DICOM geometry of slice k of a volume whose array axes are (column i, row j, slice k) and
 * whose affine maps them to RAS millimetres (NIfTI convention): i runs along a row, j down
 * the columns, k across slices.
 */
export function sliceGeometry(rasAffine: Affine, k: number): SliceGeometry {
  const lps = flipRasLps(rasAffine);
  const [x, y, z] = applyAffine(lps, 0, 0, k);
  const row = columnDirection(lps, 0);
  const col = columnDirection(lps, 1);
  return {
    imagePositionPatient: [x, y, z],
    imageOrientationPatient: [row[0], row[1], row[2], col[0], col[1], col[2]],
    pixelSpacing: [columnNorm(lps, 1), columnNorm(lps, 0)],
  };
}
