// The viewports of one series: a stack viewport, or three orthographic volume viewports (axial,
// sagittal, coronal) over a streaming image volume with crosshairs. The volume is preallocated
// from the series metadata, its frames are written into place as they arrive, and the viewports
// re-render as they do. Window, invert, reset, the active mouse tool and the slice go through here
// so that the toolbar, the keyboard and deep links share one path. The stack shows each image in
// the standard display orientation of its plane (orientation.ts); the tool group is display-tools.ts.

import {
  cache,
  Enums,
  eventTarget,
  RenderingEngine,
  setVolumesForViewports,
  volumeLoader,
  utilities as csUtilities,
  type Types,
} from '@cornerstonejs/core';
import { annotation, LengthTool, ToolGroupManager, utilities as toolUtilities } from '@cornerstonejs/tools';
import {
  activateTool,
  createToolGroup,
  crosshairCenterOf,
  crosshairGripOf,
  toolModeOf,
  type Layout,
  type MouseTool,
} from './display-tools.js';
import type { LoadedSeries } from './series.js';
import { orientStack } from './orientation.js';
import { applyStages, type StagesOptions } from './stages.js';

export type { Layout, MouseTool };

const ENGINE_ID = 'medstream-radiology';
const MPR_VIEWPORTS = [
  { id: 'axial', orientation: Enums.OrientationAxis.AXIAL, label: 'Axial' },
  { id: 'sagittal', orientation: Enums.OrientationAxis.SAGITTAL, label: 'Sagittal' },
  { id: 'coronal', orientation: Enums.OrientationAxis.CORONAL, label: 'Coronal' },
] as const;

/** One rendered frame of the axial (or stack) viewport while the series loads: for the tests. */
export interface RenderSample {
  /** Milliseconds since the display was created. */
  t: number;
  /** Milliseconds since the page's navigation started (performance.now()). */
  at: number;
  loaded: number;
  total: number;
  /** Share of canvas pixels that are not black. */
  lit: number;
}

export interface DisplayEvents {
  /** The slice or the window changed (for the hash and the overlay). */
  onView(state: { slice: number; slices: number; ww?: number; wc?: number }): void;
  /** A frame failed: its error is shown, never a silent black viewport. */
  onError(message: string): void;
}

export class SeriesDisplay {
  readonly engine: RenderingEngine;
  readonly samples: RenderSample[] = [];
  /** When the last frame of the series arrived (performance.now()). */
  completeAt?: number;
  /** Whether the series loads with the progressive stages. */
  stages = false;
  /** The viewports shown (the stack, or axial, sagittal, coronal): overlays attach to these. */
  readonly viewportIds: string[];
  private readonly groupId: string;
  private readonly volumeId?: string;
  private primary: MouseTool = 'wl';
  private loaded = new Set<string>();
  private readonly cleanup: (() => void)[] = [];
  private readonly started = performance.now();

  private constructor(
    readonly series: LoadedSeries,
    readonly layout: Layout,
    private readonly elements: HTMLDivElement[],
    private readonly events: DisplayEvents,
  ) {
    this.engine = new RenderingEngine(`${ENGINE_ID}-${Math.random().toString(36).slice(2)}`);
    this.groupId = `${this.engine.id}-tools`;
    if (layout === 'stack') {
      this.viewportIds = ['stack'];
      this.engine.enableElement({
        viewportId: 'stack',
        type: Enums.ViewportType.STACK,
        element: elements[0],
        defaultOptions: { background: [0, 0, 0] },
      });
    } else {
      this.viewportIds = MPR_VIEWPORTS.map((v) => v.id);
      this.volumeId = `cornerstoneStreamingImageVolume:${series.seriesUid}`;
      this.engine.setViewports(
        MPR_VIEWPORTS.map((v, i) => ({
          viewportId: v.id,
          type: Enums.ViewportType.ORTHOGRAPHIC,
          element: elements[i],
          defaultOptions: { orientation: v.orientation, background: [0, 0, 0] as Types.Point3 },
        })),
      );
    }
    createToolGroup(this.groupId, this.engine.id, layout, this.viewportIds);
    this.setTool('wl');
    this.listen();
  }

  /** Shows `series` in `elements` (one for a stack, three for MPR) and starts loading it. */
  static async open(
    series: LoadedSeries,
    layout: Layout,
    elements: HTMLDivElement[],
    events: DisplayEvents,
    initial: { slice?: number; ww?: number; wc?: number },
    /** Load with the progressive stages (stages.ts) rather than plain /frames/; undefined: off. */
    stages?: StagesOptions,
  ): Promise<SeriesDisplay> {
    const d = new SeriesDisplay(series, layout, elements, events);
    d.stages = stages !== undefined;
    try {
      applyStages(stages, layout, d.volumeId);
      await d.load(initial);
    } catch (err) {
      events.onError(messageOf(err));
    }
    return d;
  }

  private async load(initial: { slice?: number; ww?: number; wc?: number }): Promise<void> {
    const ids = this.series.imageIds;
    const slice = Math.min(initial.slice ?? Math.floor(ids.length / 2), ids.length - 1);
    if (this.layout === 'stack') {
      const vp = this.stackViewport();
      await vp.setStack(ids, slice);
      // Loads the rest of the stack in the background (nearest slices first).
      toolUtilities.stackPrefetch.enable(this.elements[0]);
    } else {
      const volume = await volumeLoader.createAndCacheVolume(this.volumeId!, { imageIds: ids });
      await setVolumesForViewports(this.engine, [{ volumeId: this.volumeId! }], this.viewportIds);
      // Streams every frame into the preallocated volume; the viewports re-render as they land.
      (volume as unknown as { load(cb?: () => void): void }).load();
      if (initial.slice !== undefined) await this.setSlice(slice);
    }
    if (initial.ww !== undefined && initial.wc !== undefined) this.setWindow(initial.ww, initial.wc);
    this.engine.render();
    this.report();
  }

  /** The tool on the primary mouse button (and one-finger touch). */
  setTool(tool: MouseTool): void {
    if (tool === 'crosshairs' && this.layout !== 'mpr') return;
    activateTool(this.groupId, this.layout, this.primary, tool);
    this.primary = tool;
  }

  /** The Cornerstone mode of a tool of this display (Active, Passive, Enabled, Disabled): for the tests. */
  toolMode(tool: MouseTool): string | undefined {
    return toolModeOf(this.groupId, tool);
  }

  /**
   * A point (canvas pixels) of viewport `n` on a grabbable part of a crosshair line (the middle
   * of its first drag segment), in MPR: for the tests.
   */
  crosshairGrip(n: number): [number, number] | undefined {
    return crosshairGripOf(this.elements[n], this.viewportIds[n]);
  }

  /** Where the crosshair lines cross (world mm), in MPR: for the tests. */
  crosshairCenter(): number[] | undefined {
    return crosshairCenterOf(this.groupId);
  }

  get tool(): MouseTool {
    return this.primary;
  }

  private listen(): void {
    const onLoaded = (e: Event): void => {
      const id = (e as CustomEvent<{ image?: { imageId?: string } }>).detail.image?.imageId;
      if (id && this.series.imageIds.includes(id)) this.loaded.add(id);
      if (this.loaded.size === this.series.imageIds.length) this.completeAt ??= performance.now();
    };
    const onFailed = (e: Event): void => {
      const d = (e as CustomEvent<{ imageId?: string; error?: unknown }>).detail;
      if (d.imageId && !this.series.imageIds.includes(d.imageId)) return;
      const frame = d.imageId ? this.series.imageIds.indexOf(d.imageId) + 1 : 0;
      this.events.onError(`Frame ${frame} of ${this.series.imageIds.length} failed: ${messageOf(d.error)}`);
    };
    eventTarget.addEventListener(Enums.Events.IMAGE_LOADED, onLoaded);
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_FAILED, onFailed);
    eventTarget.addEventListener(Enums.Events.IMAGE_LOAD_ERROR, onFailed);
    this.cleanup.push(() => {
      eventTarget.removeEventListener(Enums.Events.IMAGE_LOADED, onLoaded);
      eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_FAILED, onFailed);
      eventTarget.removeEventListener(Enums.Events.IMAGE_LOAD_ERROR, onFailed);
    });
    const main = this.elements[0];
    if (this.layout === 'stack') {
      // Each new image is drawn after this event: in the standard orientation (orientation.ts).
      const orient = (): void => void orientStack(this.stackViewport());
      main.addEventListener(Enums.Events.STACK_NEW_IMAGE, orient);
      this.cleanup.push(() => main.removeEventListener(Enums.Events.STACK_NEW_IMAGE, orient));
    }
    const onRendered = (): void => {
      const at = performance.now();
      this.samples.push({
        t: at - this.started,
        at,
        loaded: this.loaded.size,
        total: this.series.imageIds.length,
        lit: litShare(main),
      });
    };
    const onChange = (): void => this.report();
    main.addEventListener(Enums.Events.IMAGE_RENDERED, onRendered);
    for (const el of this.elements) {
      el.addEventListener(Enums.Events.STACK_NEW_IMAGE, onChange);
      el.addEventListener(Enums.Events.VOI_MODIFIED, onChange);
      el.addEventListener(Enums.Events.CAMERA_MODIFIED, onChange);
    }
    this.cleanup.push(() => {
      main.removeEventListener(Enums.Events.IMAGE_RENDERED, onRendered);
      for (const el of this.elements) {
        el.removeEventListener(Enums.Events.STACK_NEW_IMAGE, onChange);
        el.removeEventListener(Enums.Events.VOI_MODIFIED, onChange);
        el.removeEventListener(Enums.Events.CAMERA_MODIFIED, onChange);
      }
    });
  }

  /** Frames of the series loaded so far. */
  get loadedCount(): number {
    return this.loaded.size;
  }

  private report(): void {
    const { slice, slices } = this.slice();
    const voi = this.mainViewport().getProperties()?.voiRange;
    this.events.onView({
      slice,
      slices,
      ...(voi ? { ww: voi.upper - voi.lower, wc: (voi.upper + voi.lower) / 2 } : {}),
    });
  }

  private stackViewport(): Types.IStackViewport {
    return this.engine.getViewport('stack') as Types.IStackViewport;
  }

  mainViewport(): Types.IStackViewport | Types.IVolumeViewport {
    return this.engine.getViewport(this.viewportIds[0]) as Types.IStackViewport | Types.IVolumeViewport;
  }

  viewports(): (Types.IStackViewport | Types.IVolumeViewport)[] {
    return this.viewportIds.map((id) => this.engine.getViewport(id) as Types.IVolumeViewport);
  }

  slice(): { slice: number; slices: number } {
    const vp = this.mainViewport();
    return { slice: vp.getCurrentImageIdIndex(), slices: vp.getNumberOfSlices() };
  }

  async setSlice(index: number): Promise<void> {
    const { slices } = this.slice();
    const imageIndex = Math.max(0, Math.min(slices - 1, index));
    await csUtilities.jumpToSlice(this.elements[0], { imageIndex });
  }

  async scroll(delta: number): Promise<void> {
    await this.setSlice(this.slice().slice + delta);
  }

  setWindow(ww: number, wc: number): void {
    this.setVoi({ lower: wc - ww / 2, upper: wc + ww / 2 });
  }

  setVoi(voiRange: { lower: number; upper: number }): void {
    for (const vp of this.viewports()) vp.setProperties({ voiRange });
    this.engine.render();
    this.report();
  }

  /** The displayed slice's stored values (modality LUT applied) of the main viewport. */
  pixelValues(): ArrayLike<number> | undefined {
    const data = this.mainViewport().getImageData() as {
      voxelManager?: { getScalarData(): ArrayLike<number> };
    };
    if (this.layout === 'stack') return data?.voxelManager?.getScalarData();
    // A volume: the values of the whole volume (the auto window is for the series, not the plane).
    const volume = cache.getVolume(this.volumeId!);
    return volume?.voxelManager?.getCompleteScalarDataArray?.() as ArrayLike<number> | undefined;
  }

  /**
   * The length measurements on the main viewport: the length with its unit (mm when calibrated)
   * and the on-screen distance between its end points (CSS pixels).
   */
  lengths(): { length: number; unit: string; screenPx: number }[] {
    const vp = this.mainViewport();
    const all = annotation.state.getAnnotations(LengthTool.toolName, this.elements[0]) ?? [];
    return all.flatMap((a) => {
      const data = a.data as {
        handles?: { points?: Types.Point3[] };
        cachedStats?: Record<string, { length?: number; unit?: string }>;
      };
      const [p0, p1] = (data.handles?.points ?? []).map((p) => vp.worldToCanvas(p));
      const screenPx = p0 && p1 ? Math.hypot(p1[0] - p0[0], p1[1] - p0[1]) : NaN;
      return Object.values(data.cachedStats ?? {})
        .filter((s) => typeof s.length === 'number')
        .map((s) => ({ length: s.length!, unit: s.unit ?? '', screenPx }));
    });
  }

  toggleInvert(): boolean {
    const invert = !this.mainViewport().getProperties()?.invert;
    for (const vp of this.viewports()) vp.setProperties({ invert });
    this.engine.render();
    return invert;
  }

  reset(): void {
    for (const vp of this.viewports()) {
      vp.resetProperties();
      vp.resetCamera();
    }
    if (this.layout === 'stack') orientStack(this.stackViewport());
    this.engine.render();
    this.report();
  }

  resize(): void {
    this.engine.resize(true, true);
  }

  destroy(): void {
    for (const c of this.cleanup) c();
    ToolGroupManager.destroyToolGroup(this.groupId);
    this.engine.destroy();
    if (this.volumeId) cache.removeVolumeLoadObject(this.volumeId);
  }
}

/** Share of the viewport canvas' pixels that are not black. */
export function litShare(element: HTMLElement): number {
  const canvas = element.querySelector('canvas');
  const ctx = canvas?.getContext('2d', { willReadFrequently: true });
  if (!canvas || !ctx || canvas.width === 0 || canvas.height === 0) return 0;
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let lit = 0;
  for (let i = 0; i < data.length; i += 16) if (data[i] > 8 || data[i + 1] > 8 || data[i + 2] > 8) lit++;
  return lit / (data.length / 16);
}

export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (err && typeof err === 'object') {
    const o = err as { message?: unknown; status?: unknown; statusText?: unknown; error?: unknown };
    if (typeof o.message === 'string') return o.message;
    if (o.status !== undefined) return `HTTP ${String(o.status)} ${String(o.statusText ?? '')}`.trim();
    if (o.error !== undefined) return messageOf(o.error);
  }
  return String(err);
}
