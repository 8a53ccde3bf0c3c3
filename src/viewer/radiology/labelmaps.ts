// Segmentation overlays of one SeriesDisplay: a decoded SEG (a job's result or a SEG series of the
// study) becomes a Cornerstone3D labelmap segmentation — one derived labelmap image per image of
// the series, each SEG frame written into the image it references (by SOP Instance UID, else by
// position along the slice normal) — shown on every viewport of the display (the stack, or the
// three MPR planes, where Cornerstone builds the labelmap volume from the same images), with a
// colour per segment, opacity, fill and outline.

import { cache, imageLoader, metaData, type Types } from '@cornerstonejs/core';
import { Enums as ToolEnums, segmentation } from '@cornerstonejs/tools';
import type { SeriesDisplay } from './display.js';
import type { DecodedSeg } from './seg-decode.js';

const LABELMAP = ToolEnums.SegmentationRepresentations.Labelmap;

export interface OverlayStyle {
  /** Fill opacity, 0..1. */
  opacity: number;
  fill: boolean;
  outline: boolean;
}

export interface PlacedOverlay {
  /** Voxels inside, over all segments. */
  voxels: number;
  /** Series slice indices (the display's order) holding the mask. */
  slices: number[];
  /** Frames whose source image is not in this series (not shown). */
  unplaced: number;
}

interface Shown {
  labelmapIds: string[];
  voxelsPerSlice: number[];
}

/** The SOP Instance UID and frame number of a `wadors:` image ID. */
export function instanceOfImageId(imageId: string): { sop: string; frame: number } | undefined {
  const m = /\/instances\/([^/]+)\/frames\/(\d+)$/.exec(imageId);
  return m ? { sop: m[1], frame: Number(m[2]) } : undefined;
}

export class Labelmaps {
  private readonly shown = new Map<string, Shown>();

  constructor(
    private readonly display: SeriesDisplay,
    private style: OverlayStyle = { opacity: 0.4, fill: true, outline: true },
  ) {}

  /**
   * Shows `seg` as segmentation `id` (replacing one of that id). `color` overrides the SEG's
   * colours (one for every segment).
   */
  async add(
    id: string,
    seg: DecodedSeg,
    options: { label: string; color?: [number, number, number] },
  ): Promise<PlacedOverlay> {
    this.remove(id);
    const imageIds = this.display.series.imageIds;
    const bySop = new Map<string, number>();
    imageIds.forEach((imageId, k) => {
      const at = instanceOfImageId(imageId);
      if (at?.frame === 1) bySop.set(at.sop, k);
    });
    const images = imageLoader.createAndCacheDerivedLabelmapImages(imageIds);
    const voxelsPerSlice = new Array<number>(imageIds.length).fill(0);
    let unplaced = 0;
    for (const frame of seg.frames) {
      const k =
        (frame.sopUid !== undefined ? bySop.get(frame.sopUid) : undefined) ?? this.byPosition(frame.position);
      const image = k === undefined ? undefined : images[k];
      if (k === undefined || !image || image.rows !== seg.rows || image.columns !== seg.columns) {
        unplaced++;
        continue;
      }
      const vm = image.voxelManager as unknown as { setAtIndex(i: number, v: number): void };
      for (let p = 0; p < frame.mask.length; p++) {
        if (!frame.mask[p]) continue;
        vm.setAtIndex(p, frame.segment);
        voxelsPerSlice[k]++;
      }
    }
    const numbers = seg.segments.length > 0 ? seg.segments : [{ number: 1, label: options.label }];
    const lut: Types.ColorLUT = [[0, 0, 0, 0]];
    for (const s of numbers) {
      const c = options.color ?? ('color' in s ? s.color : undefined) ?? [255, 196, 0];
      lut[s.number] = [c[0], c[1], c[2], 255];
    }
    for (let i = 1; i < lut.length; i++) lut[i] ??= [255, 196, 0, 255];
    const labelmapIds = images.map((i) => i.imageId);
    segmentation.addSegmentations([
      {
        segmentationId: id,
        representation: { type: LABELMAP, data: { imageIds: labelmapIds } },
        config: {
          label: options.label,
          segments: Object.fromEntries(
            numbers.map((s) => [s.number, { segmentIndex: s.number, label: s.label || options.label }]),
          ),
        },
      },
    ]);
    await segmentation.addLabelmapRepresentationToViewportMap(
      Object.fromEntries(
        this.display.viewportIds.map((v) => [v, [{ segmentationId: id, config: { colorLUTOrIndex: lut } }]]),
      ),
    );
    this.shown.set(id, { labelmapIds, voxelsPerSlice });
    this.applyStyle(id);
    this.display.engine.render();
    return {
      voxels: voxelsPerSlice.reduce((a, b) => a + b, 0),
      slices: voxelsPerSlice.flatMap((n, k) => (n > 0 ? [k] : [])),
      unplaced,
    };
  }

  /** Voxels of segmentation `id` on each slice of the series (from its labelmap images). */
  voxelsPerSlice(id: string): number[] {
    const shown = this.shown.get(id);
    if (!shown) return [];
    return shown.labelmapIds.map((imageId) => {
      const data = cache.getImage(imageId)?.voxelManager?.getScalarData() as ArrayLike<number> | undefined;
      let n = 0;
      for (let p = 0; p < (data?.length ?? 0); p++) if (data![p]) n++;
      return n;
    });
  }

  setVisible(id: string, visible: boolean): void {
    for (const v of this.display.viewportIds)
      segmentation.config.visibility.setSegmentationRepresentationVisibility(
        v,
        { segmentationId: id, type: LABELMAP },
        visible,
      );
    this.display.engine.render();
  }

  setStyle(style: Partial<OverlayStyle>): void {
    this.style = { ...this.style, ...style };
    for (const id of this.shown.keys()) this.applyStyle(id);
    this.display.engine.render();
  }

  get currentStyle(): OverlayStyle {
    return { ...this.style };
  }

  remove(id: string): void {
    const shown = this.shown.get(id);
    if (!shown) return;
    this.shown.delete(id);
    segmentation.removeSegmentation(id);
    for (const imageId of shown.labelmapIds) cache.removeImageLoadObject(imageId, { force: true });
    this.display.engine.render();
  }

  destroy(): void {
    for (const id of [...this.shown.keys()]) this.remove(id);
  }

  private applyStyle(id: string): void {
    const { opacity, fill, outline } = this.style;
    segmentation.config.style.setStyle(
      { type: LABELMAP, segmentationId: id },
      {
        renderFill: fill,
        fillAlpha: opacity,
        renderOutline: outline,
        outlineWidth: 2,
        outlineOpacity: 1,
        renderFillInactive: fill,
        fillAlphaInactive: opacity,
        renderOutlineInactive: outline,
        outlineWidthInactive: 2,
        outlineOpacityInactive: 1,
      },
    );
  }

  /** The series slice at a frame's ImagePositionPatient (within 0.5 mm), for SEGs without references. */
  private byPosition(position: [number, number, number] | undefined): number | undefined {
    if (!position) return undefined;
    let best: { k: number; d: number } | undefined;
    this.display.series.imageIds.forEach((imageId, k) => {
      const plane = metaData.get('imagePlaneModule', imageId) as
        { imagePositionPatient?: number[] } | undefined;
      const ipp = plane?.imagePositionPatient;
      if (!ipp || ipp.length !== 3) return;
      const d = Math.hypot(ipp[0] - position[0], ipp[1] - position[1], ipp[2] - position[2]);
      if (!best || d < best.d) best = { k, d };
    });
    return best && best.d < 0.5 ? best.k : undefined;
  }
}
