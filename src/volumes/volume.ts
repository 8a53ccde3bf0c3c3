// The in-memory scalar volume every reader (NIfTI, DICOM series) returns and the segmentation
// pipeline consumes: voxel values in real-world units (HU for CT) as Float32, x fastest, plus
// the voxel -> RAS affine and enough of the source to write a mask in the same geometry.

import type { Affine, SliceGeometry } from './affine.js';
import { columnNorm, flipRasLps, sliceGeometry } from './affine.js';
import type { NiftiGeometry } from './nifti-header.js';

/** Where a volume came from: what a mask writer needs to reproduce its geometry. */
export type VolumeSource =
  | { kind: 'nifti'; geometry: NiftiGeometry }
  | {
      kind: 'dicom';
      /** Per slice k (sorted along the normal): the source instance it came from. */
      instances: DicomInstanceRef[];
      frameOfReferenceUid: string;
      studyInstanceUid: string;
      seriesInstanceUid: string;
      /** Patient/study attributes copied into derived objects (SEG). */
      patient: Record<string, string>;
    };

export interface DicomInstanceRef {
  sopClassUid: string;
  sopInstanceUid: string;
  /** Storage key or file path the instance was read from. */
  key: string;
  /** The frame (1-based) of a multi-frame instance this slice is. */
  frameNumber?: number;
}

export interface Volume {
  /** [columns (i), rows (j), slices (k)]. */
  dims: [number, number, number];
  /** Voxel (i, j, k) -> RAS millimetres (the NIfTI/nibabel convention). */
  affine: Affine;
  /** Values after rescaling (scl_slope/inter, RescaleSlope/Intercept), index i + nx * (j + ny * k). */
  data: Float32Array;
  source: VolumeSource;
  /** The window the source suggests (DICOM VOI), if any. */
  defaultWindow?: [number, number];
}

/** Voxel spacing along i, j, k in millimetres. */
export function volumeSpacing(v: Pick<Volume, 'affine'>): [number, number, number] {
  return [columnNorm(v.affine, 0), columnNorm(v.affine, 1), columnNorm(v.affine, 2)];
}

/** The affine in DICOM's LPS convention. */
export function volumeLpsAffine(v: Pick<Volume, 'affine'>): Affine {
  return flipRasLps(v.affine);
}

/** Per-slice DICOM geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing in LPS). */
export function volumeSliceGeometry(v: Pick<Volume, 'affine'>, k: number): SliceGeometry {
  return sliceGeometry(v.affine, k);
}

/** Volume of one voxel in millilitres. */
export function voxelMillilitres(v: Pick<Volume, 'affine'>): number {
  const a = v.affine;
  const det =
    a[0] * (a[5] * a[10] - a[6] * a[9]) -
    a[1] * (a[4] * a[10] - a[6] * a[8]) +
    a[2] * (a[4] * a[9] - a[5] * a[8]);
  return Math.abs(det) / 1000;
}

/** A VOI window (WindowCenter / WindowWidth) as the [low, high] range of `defaultWindow`. */
export function windowRange(
  center: number | undefined,
  width: number | undefined,
): [number, number] | undefined {
  return center !== undefined && width !== undefined && width > 0
    ? [center - width / 2, center + width / 2]
    : undefined;
}
