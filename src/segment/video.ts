// Video segmentation (the MedSAM2 study's ultrasound case): a cine's frames with a box (or a
// mask) on frame 0 -> a mask for every frame. The frames become a stack (frame t = slice t, grey
// levels 0..255) run through the same pipeline as volumes, forward from frame 0: every engine
// (classical, sam, medsam2 with its memory bank) tracks the object frame to frame, and the same
// stopping rule ends the track when the object leaves the picture.

import { BadRequest } from '../errors.js';
import type { Volume } from '../volumes/volume.js';
import type { Box, SegmentationEngine } from './engine.js';
import { boundingBox } from './mask2d.js';
import type { CineSource } from './video-seg.js';
import { type PipelineOptions, type SegmentResult, segmentVolume } from './pipeline.js';

/** Grey frames, all width x height, 0..255 per pixel, in display order. */
export interface VideoFrames {
  width: number;
  height: number;
  frames: Uint8Array[];
  /** Where the frames came from (for messages). */
  name: string;
  /** The cine instance, when the frames came from DICOM (what a SEG references). */
  dicom?: CineSource;
}

/** The prompt on frame 0: a box, or a mask whose bounding box is the prompt. */
export type VideoPrompt = { box: Box } | { mask: Uint8Array };

/** The frames as a volume: frame t = slice k = t, 1 mm pixels, identity geometry. */
export function videoVolume(video: VideoFrames): Volume {
  const { width, height, frames } = video;
  if (frames.length < 2)
    throw new BadRequest(`${video.name}: ${frames.length} frame(s); a video needs at least 2`);
  const plane = width * height;
  const data = new Float32Array(plane * frames.length);
  frames.forEach((f, t) => {
    if (f.length !== plane) throw new BadRequest(`${video.name}: frame ${t} is not ${width}x${height}`);
    data.set(f, t * plane);
  });
  const affine = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  return {
    dims: [width, height, frames.length],
    affine,
    data,
    source: {
      kind: 'nifti',
      geometry: {
        qformCode: 0,
        sformCode: 0,
        quaternion: { b: 0, c: 0, d: 0, qx: 0, qy: 0, qz: 0, dx: 1, dy: 1, dz: 1, qfac: 1 },
        srow: affine.slice(0, 12),
        pixdim: [1, 1, 1, 1, 0, 0, 0, 0],
        xyztUnits: 2,
      },
    },
    defaultWindow: [0, 255],
  };
}

/** The box a prompt stands for (a mask's bounding box); refuses an empty mask. */
export function promptBox(video: VideoFrames, prompt: VideoPrompt): Box {
  if ('box' in prompt) return prompt.box;
  if (prompt.mask.length !== video.width * video.height)
    throw new BadRequest(`the frame-0 mask is not ${video.width}x${video.height} like the frames`);
  const box = boundingBox(prompt.mask, { width: video.width, height: video.height });
  if (!box) throw new BadRequest('the frame-0 mask is empty');
  return box;
}

export interface VideoResult extends SegmentResult {
  /** One 0/1 mask per frame (views into `mask`). */
  frames: Uint8Array[];
}

/** Segments one object through the video from its prompt on frame 0. */
export async function segmentVideo(
  video: VideoFrames,
  prompt: VideoPrompt,
  engine: SegmentationEngine,
  options: PipelineOptions & { window?: [number, number] } = {},
): Promise<VideoResult> {
  const volume = videoVolume(video);
  const box = promptBox(video, prompt);
  const result = await segmentVolume(
    volume,
    { slice: 0, box, window: options.window ?? [0, 255] },
    engine,
    options,
  );
  const plane = video.width * video.height;
  const frames = video.frames.map((_, t) => result.mask.subarray(t * plane, (t + 1) * plane));
  return { ...result, frames };
}
