// The viewer's box-prompted segmentation (issue 19): a box drawn with the "Box" tool (Cornerstone3D's
// RectangleROI) on the stack or the axial MPR plane becomes a job (POST /segmentations: the key
// slice's instance, the box in its pixel indices, the window on screen), its progress is polled,
// and its SEG is shown as a labelmap overlay on every slice and plane (labelmaps.ts). The panel
// lists the segments: show/hide, accept (store the SEG into the study over STOW-RS), discard,
// re-run with the box as adjusted, download NIfTI / SEG; and the study's stored SEG series, which
// can be shown as overlays too.

import { eventTarget } from '@cornerstonejs/core';
import {
  annotation,
  Enums as ToolEnums,
  RectangleROITool,
  type Types as ToolTypes,
} from '@cornerstonejs/tools';
import { el } from '../common.js';
import type { DicomwebClient } from './dicomweb.js';
import { messageOf, type SeriesDisplay } from './display.js';
import { boxPrompt } from './box-prompt.js';
import { Labelmaps, type PlacedOverlay } from './labelmaps.js';
import { decodeSeg, type DecodedSeg } from './seg-decode.js';
import {
  progressText,
  saveBytes,
  SegmentationClient,
  type JobRequest,
  type JobView,
} from './segmentation-client.js';

const PALETTE = ['#00e040', '#ff8000', '#2080ff', '#e020e0', '#ffe000'];
const POLL_MS = 250;

export interface SegmentItem {
  /** Segmentation id of the overlay (stable across re-runs). */
  id: string;
  kind: 'job' | 'study';
  seriesUid: string;
  label: string;
  color: string;
  /** queued, running, done, failed, cancelled (a job), or shown (a stored SEG). */
  state: string;
  message: string;
  job?: JobView;
  request?: JobRequest;
  seg?: DecodedSeg;
  segBytes?: Uint8Array;
  placed?: PlacedOverlay;
  annotationUID?: string;
  accepted: boolean;
  visible: boolean;
  li: HTMLLIElement;
}

export class SegmentationPanel {
  readonly items: SegmentItem[] = [];
  readonly api: SegmentationClient;
  private display?: SeriesDisplay;
  private labelmaps?: Labelmaps;
  private count = 0;
  private readonly list: HTMLUListElement;
  private readonly studyList: HTMLUListElement;
  private readonly engineEl: HTMLSelectElement;
  private readonly labelEl: HTMLInputElement;
  /** The next segment's colour (advances through the palette after each box). */
  private readonly colorEl: HTMLInputElement;
  private readonly statusEl: HTMLElement;
  private readonly onCompleted = (e: Event) => void this.boxDrawn(e);

  constructor(
    parent: HTMLElement,
    dicomweb: DicomwebClient,
    private readonly studyUid: string,
  ) {
    this.api = new SegmentationClient(dicomweb);
    const section = el('section', 'rad-seg', undefined, { id: 'seg-panel', 'aria-label': 'Segmentation' });
    this.labelEl = el('input', undefined, undefined, { name: 'seg-label', value: 'lesion', maxlength: '64' });
    this.colorEl = el('input', undefined, undefined, { type: 'color', name: 'seg-color', value: PALETTE[0] });
    this.engineEl = el('select', undefined, undefined, { name: 'seg-engine' });
    for (const name of ['classical', 'sam', 'medsam2'])
      this.engineEl.append(el('option', undefined, name, { value: name }));
    const opacity = el('input', undefined, undefined, {
      type: 'range',
      name: 'seg-opacity',
      min: '0',
      max: '1',
      step: '0.05',
      value: '0.4',
    });
    const fill = el('input', undefined, undefined, { type: 'checkbox', name: 'seg-fill', checked: '' });
    const outline = el('input', undefined, undefined, { type: 'checkbox', name: 'seg-outline', checked: '' });
    const style = () =>
      this.labelmaps?.setStyle({
        opacity: Number(opacity.value),
        fill: fill.checked,
        outline: outline.checked,
      });
    for (const i of [opacity, fill, outline]) i.addEventListener('input', style);
    const label = (text: string, input: HTMLElement) => {
      const l = el('label', undefined, text);
      l.append(input);
      return l;
    };
    this.statusEl = el(
      'p',
      'rad-seg-status',
      'Box tool (B): draw a box around a structure on the stack or the axial plane.',
      {
        id: 'seg-status',
        'aria-live': 'polite',
      },
    );
    this.list = el('ul', 'rad-seg-list', undefined, { id: 'seg-list' });
    this.studyList = el('ul', 'rad-seg-list', undefined, { id: 'seg-study-list' });
    section.append(
      el('h2', undefined, 'Segmentation'),
      label('Label ', this.labelEl),
      label('Colour ', this.colorEl),
      label('Engine ', this.engineEl),
      label('Opacity ', opacity),
      label('Fill ', fill),
      label('Outline ', outline),
      this.statusEl,
      this.list,
      el('h3', undefined, 'Stored SEG series'),
      this.studyList,
    );
    parent.append(section);
  }

  /** Follows a newly opened display: its box tool, and the overlays of its series again. */
  async attach(display: SeriesDisplay): Promise<void> {
    this.detach();
    this.display = display;
    this.labelmaps = new Labelmaps(display);
    eventTarget.addEventListener(ToolEnums.Events.ANNOTATION_COMPLETED, this.onCompleted);
    // An overlay that fails to show marks its segment failed; the series stays shown.
    for (const item of this.items)
      if (item.seg && item.seriesUid === display.series.seriesUid)
        await this.show(item).catch((e: unknown) => this.update(item, 'failed', messageOf(e)));
    await this.refreshStudySegs().catch((e: unknown) => this.status(`Stored SEG series: ${messageOf(e)}`));
  }

  detach(): void {
    eventTarget.removeEventListener(ToolEnums.Events.ANNOTATION_COMPLETED, this.onCompleted);
    this.labelmaps?.destroy();
    this.labelmaps = undefined;
    this.display = undefined;
  }

  /** The overlay's voxels per series slice of an item (tests). */
  voxelsPerSlice(id: string): number[] {
    return this.labelmaps?.voxelsPerSlice(id) ?? [];
  }

  private status(text: string): void {
    this.statusEl.textContent = text;
  }

  private async boxDrawn(e: Event): Promise<void> {
    const a = (e as CustomEvent<{ annotation: ToolTypes.Annotation }>).detail.annotation;
    if (a.metadata?.toolName !== RectangleROITool.toolName || !this.display) return;
    const request = this.requestFor(a);
    if (!request) return;
    const n = ++this.count;
    const item: SegmentItem = {
      id: `medstream-seg-${n}`,
      kind: 'job',
      seriesUid: this.display.series.seriesUid,
      label: request.label,
      color: this.colorEl.value,
      state: 'queued',
      message: '',
      annotationUID: a.annotationUID,
      accepted: false,
      visible: true,
      li: el('li', 'rad-seg-item'),
    };
    request.color = item.color;
    this.colorEl.value = PALETTE[n % PALETTE.length];
    this.items.push(item);
    this.list.append(item.li);
    await this.run(item, request);
  }

  /** The job request of a box annotation, or undefined (and a message) where it cannot be one. */
  private requestFor(a: ToolTypes.Annotation): JobRequest | undefined {
    const display = this.display!;
    const prompt = boxPrompt(display, a);
    if ('refused' in prompt) {
      this.status(prompt.refused);
      if (a.annotationUID) annotation.state.removeAnnotation(a.annotationUID);
      display.engine.render();
      return undefined;
    }
    return {
      ...prompt,
      engine: this.engineEl.value,
      label: this.labelEl.value.trim() || 'segment',
      store: false,
    };
  }

  /** Submits `request` for `item`, follows the job, and shows its SEG. */
  private async run(item: SegmentItem, request: JobRequest): Promise<void> {
    item.request = request;
    item.accepted = false;
    item.seg = undefined;
    item.segBytes = undefined;
    item.placed = undefined;
    this.labelmaps?.remove(item.id);
    try {
      let job = await this.api.submit(request);
      item.job = job;
      while (job.state === 'queued' || job.state === 'running') {
        this.update(item, job.state, progressText(job));
        await new Promise((r) => setTimeout(r, POLL_MS));
        job = await this.api.job(job.id);
        item.job = job;
      }
      if (job.state !== 'done') {
        this.update(item, job.state, job.error?.message ?? '');
        return;
      }
      const r = job.result!;
      if (r.noSeg || !r.files['seg.dcm']) {
        this.update(item, 'done', `no mask to show: ${r.noSeg ?? 'no SEG'}`);
        return;
      }
      item.segBytes = await this.api.file(job.id, 'seg.dcm');
      item.seg = decodeSeg(item.segBytes);
      this.update(
        item,
        'done',
        `${r.voxels} voxels, ${r.millilitres} mL, slices ${r.slices?.[0]}–${r.slices?.[1]}`,
      );
      if (this.display?.series.seriesUid === item.seriesUid) await this.show(item);
    } catch (e) {
      this.update(item, 'failed', messageOf(e));
    }
  }

  private async show(item: SegmentItem): Promise<void> {
    if (!this.labelmaps || !item.seg) return;
    item.placed = await this.labelmaps.add(item.id, item.seg, {
      label: item.label,
      color: hexRgb(item.color),
    });
    this.labelmaps.setVisible(item.id, item.visible);
    this.render(item);
  }

  private update(item: SegmentItem, state: string, message: string): void {
    item.state = state;
    item.message = message;
    this.render(item);
  }

  private render(item: SegmentItem): void {
    const { li } = item;
    li.dataset.state = item.accepted ? 'accepted' : item.state;
    li.dataset.id = item.id;
    const swatch = el('span', 'rad-seg-swatch', undefined, { style: `background:${item.color}` });
    const title = el('strong', undefined, item.label);
    const state = el('span', 'rad-seg-state', item.accepted ? 'accepted (stored in the study)' : item.state);
    const row = el('div', 'rad-seg-actions');
    const act = (label: string, action: string, fn: () => unknown) => {
      const b = el('button', undefined, label, { type: 'button', 'data-action': action });
      b.addEventListener(
        'click',
        () => void Promise.resolve(fn()).catch((e: unknown) => this.update(item, 'failed', messageOf(e))),
      );
      row.append(b);
    };
    if (item.seg)
      act(item.visible ? 'Hide' : 'Show', 'toggle', () => {
        item.visible = !item.visible;
        this.labelmaps?.setVisible(item.id, item.visible);
        this.render(item);
      });
    if (item.kind === 'job') {
      if (item.job && (item.state === 'queued' || item.state === 'running'))
        act('Cancel', 'cancel', () => this.api.cancel(item.job!.id));
      if (item.segBytes && !item.accepted) act('Accept', 'accept', () => this.accept(item));
      if (item.request && item.state !== 'queued' && item.state !== 'running')
        act('Re-run', 'rerun', () => this.rerun(item));
      if (item.job?.result?.files['mask.nii.gz'])
        act('NIfTI', 'nifti', () => this.download(item, 'mask.nii.gz'));
      if (item.segBytes) act('SEG', 'seg', () => this.download(item, 'seg.dcm'));
    }
    act(item.kind === 'job' ? 'Discard' : 'Remove', 'discard', () => this.discard(item));
    li.replaceChildren(
      swatch,
      title,
      el('span', undefined, ' '),
      state,
      el('small', 'rad-seg-message', item.message),
      row,
    );
  }

  /** Stores the job's SEG into the study (STOW-RS): it becomes a series QIDO lists. */
  private async accept(item: SegmentItem): Promise<void> {
    await this.api.store(this.studyUid, item.segBytes!);
    item.accepted = true;
    this.render(item);
    this.status(`${item.label}: stored in the study.`);
    await this.refreshStudySegs();
  }

  private async rerun(item: SegmentItem): Promise<void> {
    const a = item.annotationUID ? annotation.state.getAnnotation(item.annotationUID) : undefined;
    if (!a || !this.display) return this.status('The box of this segment is gone: draw a new one.');
    const request = this.requestFor(a);
    if (!request) return;
    request.color = item.color;
    request.engine = this.engineEl.value;
    request.label = item.label;
    await this.run(item, request);
  }

  private async discard(item: SegmentItem): Promise<void> {
    if (item.job && (item.state === 'queued' || item.state === 'running'))
      await this.api.cancel(item.job.id).catch(() => undefined);
    this.labelmaps?.remove(item.id);
    if (item.annotationUID && annotation.state.getAnnotation(item.annotationUID))
      annotation.state.removeAnnotation(item.annotationUID);
    this.items.splice(this.items.indexOf(item), 1);
    item.li.remove();
    this.display?.engine.render();
  }

  private async download(item: SegmentItem, name: 'mask.nii.gz' | 'seg.dcm'): Promise<void> {
    const bytes =
      name === 'seg.dcm' && item.segBytes ? item.segBytes : await this.api.file(item.job!.id, name);
    saveBytes(bytes, `${item.label}-${item.job!.id.slice(0, 8)}-${name}`);
  }

  /** Lists the study's SEG series (QIDO-RS), each with a button that shows it as an overlay. */
  async refreshStudySegs(): Promise<void> {
    const series = await this.api.segSeries(this.studyUid);
    this.studyList.replaceChildren(
      ...series.map((s) => {
        const li = el('li', 'rad-seg-item', undefined, { 'data-seg-series': s.seriesUid });
        const b = el('button', undefined, 'Show', { type: 'button', 'data-action': 'show-seg' });
        b.addEventListener('click', () => void this.showStored(s.seriesUid, s.description));
        li.append(el('span', undefined, `${s.description || 'SEG'} `), b);
        return li;
      }),
    );
    if (series.length === 0) this.studyList.append(el('li', 'rad-seg-empty', 'none'));
  }

  /** Shows a stored SEG series over the displayed series (WADO-RS, decoded here). */
  async showStored(seriesUid: string, description: string): Promise<SegmentItem | undefined> {
    const display = this.display;
    if (!display) return undefined;
    let item = this.items.find((i) => i.kind === 'study' && i.id === `stored-${seriesUid}`);
    if (!item) {
      item = {
        id: `stored-${seriesUid}`,
        kind: 'study',
        seriesUid: display.series.seriesUid,
        label: description || 'SEG',
        color: '',
        state: 'loading',
        message: '',
        accepted: true,
        visible: true,
        li: el('li', 'rad-seg-item'),
      };
      this.items.push(item);
      this.list.append(item.li);
    }
    try {
      // Every instance of the series, as one overlay (a series may split its frames).
      const [first, ...rest] = (await this.api.segInstances(this.studyUid, seriesUid)).map(decodeSeg);
      if (!first) throw new Error('the SEG series has no instances');
      for (const more of rest) {
        first.frames.push(...more.frames);
        for (const s of more.segments)
          if (!first.segments.some((t) => t.number === s.number)) first.segments.push(s);
      }
      item.seg = first;
      const segColor = item.seg.segments[0]?.color;
      item.color = segColor
        ? `#${segColor.map((c) => c.toString(16).padStart(2, '0')).join('')}`
        : PALETTE[0];
      item.label = item.seg.segments[0]?.label || item.label;
      await this.show(item);
      const placed = item.placed!;
      if (placed.voxels === 0 && placed.unplaced > 0)
        this.update(item, 'shown', 'this SEG references another series: open that one to see it');
      else this.update(item, 'shown', `${placed.voxels} voxels on ${placed.slices.length} slices`);
    } catch (e) {
      this.update(item, 'failed', messageOf(e));
    }
    return item;
  }
}

function hexRgb(hex: string): [number, number, number] {
  const m = /^#(..)(..)(..)$/.exec(hex);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [0, 224, 64];
}
