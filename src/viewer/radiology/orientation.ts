// Display orientation of the stack viewport: the standard one its image's plane implies (axial,
// sagittal or coronal, as Cornerstone3D's MPR cameras: the patient's left on the screen's right,
// anterior or superior at the top), whatever order the pixels are stored in. A NIfTI volume
// stored in RAS order otherwise shows rotated 180°. Only quarter turns and flips: an oblique plane
// keeps its tilt.

import { CONSTANTS, type Types } from '@cornerstonejs/core';

type Vec = readonly number[];

const dot = (a: Vec, b: Vec): number => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec, b: Vec): number[] => [
  a[1] * b[2] - a[2] * b[1],
  a[2] * b[0] - a[0] * b[2],
  a[0] * b[1] - a[1] * b[0],
];
const neg = (a: Vec): number[] => a.map((x) => -x);

export interface Orientation {
  viewPlaneNormal: Vec;
  viewUp: Vec;
}

/** Cornerstone3D's camera of the standard plane nearest to a plane of normal `normal`. */
export function standardCamera(normal: Vec): Orientation {
  const [x, y, z] = normal.map(Math.abs);
  const { axial, sagittal, coronal } = CONSTANTS.MPR_CAMERA_VALUES;
  if (z >= x && z >= y) return axial;
  return x >= y ? sagittal : coronal;
}

/**
 * The camera orientation of the standard display of the plane a camera looks at: of the four
 * in-plane directions (up, down, right, left on screen now), the one nearest the standard up,
 * and the plane's normal on the standard side. `undefined` when the camera already shows it.
 */
export function standardOrientation(camera: Orientation): Orientation | undefined {
  const target = standardCamera(camera.viewPlaneNormal);
  const right = cross(neg(camera.viewPlaneNormal), camera.viewUp);
  const ups = [camera.viewUp, neg(camera.viewUp), right, neg(right)];
  const viewUp = ups.reduce((a, b) => (dot(b, target.viewUp) > dot(a, target.viewUp) ? b : a));
  const viewPlaneNormal =
    dot(camera.viewPlaneNormal, target.viewPlaneNormal) < 0
      ? neg(camera.viewPlaneNormal)
      : camera.viewPlaneNormal;
  return viewUp === camera.viewUp && viewPlaneNormal === camera.viewPlaneNormal
    ? undefined
    : { viewPlaneNormal, viewUp };
}

const ROTATIONS = [0, 90, 180, 270];

/**
 * Turns (and, where the pixels are stored mirrored, flips) the stack viewport to the standard
 * display orientation of its image, through the view presentation (rotation, flipHorizontal)
 * that Cornerstone3D keeps for the stack's next images and a stage's final image. A no-op when
 * the image already shows that way, as DICOM images stored the usual way do. Returns whether it
 * turned.
 */
export function orientStack(vp: Types.IStackViewport): boolean {
  const camera = vp.getCamera();
  if (!camera.viewPlaneNormal || !camera.viewUp) return false;
  const want = standardOrientation({ viewPlaneNormal: camera.viewPlaneNormal, viewUp: camera.viewUp });
  if (!want) return false;
  const before = vp.getViewPresentation({ rotation: true, flipHorizontal: true, flipVertical: true });
  // Which presentation gives that camera depends on Cornerstone3D's conventions for rotation and
  // flips: try the eight (no render happens in between).
  for (const flipHorizontal of [false, true]) {
    for (const rotation of ROTATIONS) {
      vp.setViewPresentation({ ...before, rotation, flipHorizontal, flipVertical: false });
      const c = vp.getCamera();
      if (dot(c.viewUp!, want.viewUp) > 0.99 && dot(c.viewPlaneNormal!, want.viewPlaneNormal) > 0.99)
        return true;
    }
  }
  vp.setViewPresentation(before);
  return false;
}
