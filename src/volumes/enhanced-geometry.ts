// Where the frames of an enhanced multi-frame instance (PS3.3 C.7.6.16, functional groups) lie
// in 3D, whatever the header was read from (a parsed data set or the catalog's DICOM JSON):
// each frame's position from its Plane Position group, orientation and pixel spacing from its own
// or the shared groups (all frames must agree), rescale per frame; frames sorted along the slice
// normal, evenly spaced, one per position (a temporal or multi-echo instance is refused: not one
// volume); and the LPS affine of the sorted stack.

import { BadRequest, UnsupportedFormat } from '../errors.js';
import { tag } from '../dicom/tags.js';
import type { Affine } from './affine.js';

export const FunctionalGroup = {
  PlanePosition: tag(0x0020, 0x9113),
  PlaneOrientation: tag(0x0020, 0x9116),
  PixelMeasures: tag(0x0028, 0x9110),
  PixelValueTransformation: tag(0x0028, 0x9145),
  FrameVoiLut: tag(0x0028, 0x9132),
} as const;

const Attribute = {
  ImagePositionPatient: tag(0x0020, 0x0032),
  ImageOrientationPatient: tag(0x0020, 0x0037),
  PixelSpacing: tag(0x0028, 0x0030),
  RescaleIntercept: tag(0x0028, 0x1052),
  RescaleSlope: tag(0x0028, 0x1053),
} as const;

/** The functional groups of one instance, however its header was read. */
export interface FrameGroups {
  /** Frames in the instance (NumberOfFrames). */
  count: number;
  /** The numbers of `attribute` in functional group `group` of frame `frame` (0-based): its own, else the shared one; [] when absent. */
  values(frame: number, group: number, attribute: number): number[];
}

export interface PlacedFrame {
  /** 0-based frame index in the instance. */
  index: number;
  position: number[];
  slope: number;
  intercept: number;
}

export interface EnhancedGeometry {
  /** Frames sorted along the slice normal. */
  frames: PlacedFrame[];
  /** Voxel (column, row, sorted frame) -> patient LPS millimetres. */
  lps: Affine;
}

export interface PlacementDefaults {
  /** Slice step of a one-frame instance (SliceThickness): its normal gives no second position. */
  thickness?: number;
  /** Rescale of frames without a Pixel Value Transformation group (the top-level attributes). */
  slope?: number;
  intercept?: number;
}

/** Places the frames of `groups`; `name` prefixes messages. */
export function placeEnhancedFrames(
  groups: FrameGroups,
  name: string,
  defaults: PlacementDefaults = {},
): EnhancedGeometry {
  const thickness = defaults.thickness ?? 1;
  const numbers = (f: number, group: number, attribute: number, n: number, what: string) => {
    const values = groups.values(f, group, attribute);
    if (values.length < n || values.slice(0, n).some((v) => !Number.isFinite(v)))
      throw new UnsupportedFormat(`${name}: frame ${f + 1} has no ${what}; cannot place it in 3D`);
    return values.slice(0, n);
  };
  const orientation = (f: number) =>
    numbers(
      f,
      FunctionalGroup.PlaneOrientation,
      Attribute.ImageOrientationPatient,
      6,
      'ImageOrientationPatient',
    );
  const pixelSpacing = (f: number) =>
    numbers(f, FunctionalGroup.PixelMeasures, Attribute.PixelSpacing, 2, 'PixelSpacing');
  const iop = orientation(0);
  const spacing = pixelSpacing(0);
  const normal = [
    iop[1] * iop[5] - iop[2] * iop[4],
    iop[2] * iop[3] - iop[0] * iop[5],
    iop[0] * iop[4] - iop[1] * iop[3],
  ];
  const frames = Array.from({ length: groups.count }, (_, f) => {
    if (orientation(f).some((v, i) => Math.abs(v - iop[i]) > 1e-4))
      throw new BadRequest(`${name}: frame ${f + 1} has another orientation; not one volume`);
    if (pixelSpacing(f).some((v, i) => Math.abs(v - spacing[i]) > 1e-4))
      throw new BadRequest(`${name}: frame ${f + 1} has another PixelSpacing; not one volume`);
    const position = numbers(
      f,
      FunctionalGroup.PlanePosition,
      Attribute.ImagePositionPatient,
      3,
      'ImagePositionPatient',
    );
    const transform = (t: number) => groups.values(f, FunctionalGroup.PixelValueTransformation, t)[0];
    return {
      index: f,
      position,
      distance: position[0] * normal[0] + position[1] * normal[1] + position[2] * normal[2],
      slope: transform(Attribute.RescaleSlope) ?? defaults.slope ?? 1,
      intercept: transform(Attribute.RescaleIntercept) ?? defaults.intercept ?? 0,
    };
  });
  frames.sort((a, b) => a.distance - b.distance);
  const nz = frames.length;
  if (nz > 1) {
    const mean = (frames[nz - 1].distance - frames[0].distance) / (nz - 1);
    for (let k = 1; k < nz; k++) {
      const gap = frames[k].distance - frames[k - 1].distance;
      if (gap < 1e-3)
        throw new BadRequest(
          `${name}: frames ${frames[k - 1].index + 1} and ${frames[k].index + 1} lie at the same position (a temporal or multi-echo instance): not one volume`,
        );
      if (Math.abs(gap - mean) > 0.01 * mean + 0.01)
        throw new UnsupportedFormat(
          `${name}: uneven frame spacing (${gap.toFixed(3)} mm, mean ${mean.toFixed(3)} mm)`,
        );
    }
  }
  const origin = frames[0].position;
  const last = frames[nz - 1].position;
  const kStep =
    nz > 1 ? [0, 1, 2].map((a) => (last[a] - origin[a]) / (nz - 1)) : normal.map((n) => n * thickness);
  // prettier-ignore
  const lps: Affine = [
    iop[0] * spacing[1], iop[3] * spacing[0], kStep[0], origin[0],
    iop[1] * spacing[1], iop[4] * spacing[0], kStep[1], origin[1],
    iop[2] * spacing[1], iop[5] * spacing[0], kStep[2], origin[2],
    0, 0, 0, 1,
  ];
  return {
    frames: frames.map(({ index, position, slope, intercept }) => ({ index, position, slope, intercept })),
    lps,
  };
}
