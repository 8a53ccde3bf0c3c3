// The study view: the study's series (thumbnail, description, per-series loading progress), a
// toolbar (layout stack / MPR, mouse tool, window presets, invert, reset), the viewports, an
// overlay with slice and window, and the error banner a failed frame raises. It keeps the hash in
// step with what is shown (deep links) and answers the keyboard shortcuts.

import { el } from '../common.js';
import { attachAiOverlay } from './ai-overlay.js';
import { startCornerstone } from './cornerstone.js';
import { dicomDate, personName, str, TAG, type DicomwebClient } from './dicomweb.js';
import { messageOf, SeriesDisplay, type Layout, type MouseTool } from './display.js';
import { formatHash, type ViewState } from './hash.js';
import { autoWindow, PRESETS, toRange } from './presets.js';
import { SegmentationPanel } from './segmentation-tool.js';
import { loadSeries, type LoadedSeries } from './series.js';
import { derivedAvailable } from './stages.js';

const TOOLS: { id: MouseTool; label: string; key: string }[] = [
  { id: 'wl', label: 'Window', key: 'w' },
  { id: 'pan', label: 'Pan', key: 'p' },
  { id: 'zoom', label: 'Zoom', key: 'z' },
  { id: 'length', label: 'Length', key: 'l' },
  { id: 'crosshairs', label: 'Crosshairs', key: 'c' },
  { id: 'box', label: 'Box', key: 'b' },
];

export interface StudyView {
  display?: SeriesDisplay;
  /** The box tool's jobs and the segmentation overlays (segmentation-tool.ts). */
  segmentation: SegmentationPanel;
  /** Frames loaded per series UID (for the progress bars and the tests). */
  progress: Map<string, { loaded: number; total: number }>;
  /** Shows another series of the study, or the same one in another layout. */
  open(seriesUid: string, layout: Layout, initial?: ViewState): Promise<void>;
  destroy(): void;
}

export async function showStudy(
  root: HTMLElement,
  client: DicomwebClient,
  state: ViewState,
): Promise<StudyView> {
  startCornerstone(client);
  const studyUid = state.study!;
  root.replaceChildren();
  const layoutEl = el('div', 'rad-layout');
  const side = el('aside', 'rad-side', undefined, { 'aria-label': 'Series' });
  const seriesList = el('ul', 'rad-series-list', undefined, { id: 'series-list' });
  const studyInfo = el('div', 'rad-study-info', undefined, { id: 'study-info' });
  side.append(studyInfo, seriesList);
  const segmentationPanel = new SegmentationPanel(side, client, studyUid);
  const mainEl = el('section', 'rad-main');
  const toolbar = el('div', 'rad-toolbar', undefined, { role: 'toolbar', 'aria-label': 'Viewer tools' });
  const viewportsEl = el('div', 'rad-viewports', undefined, { id: 'viewports' });
  const overlay = el('div', 'rad-overlay', '', { id: 'overlay', 'aria-live': 'polite' });
  const errorEl = el('div', 'rad-error', '', { id: 'rad-error', role: 'alert' });
  errorEl.hidden = true;
  mainEl.append(toolbar, viewportsEl, overlay, errorEl);
  layoutEl.append(side, mainEl);
  root.append(layoutEl);

  const view: StudyView = {
    progress: new Map(),
    segmentation: segmentationPanel,
    open: (seriesUid, layout, initial) => open(seriesUid, layout, initial),
    destroy() {
      clearInterval(timer);
      window.removeEventListener('keydown', onKey);
      window.removeEventListener('resize', onResize);
      detachAi?.();
      segmentationPanel.detach();
      view.display?.destroy();
    },
  };
  let current: ViewState = { ...state };
  const showError = (message: string): void => {
    errorEl.hidden = false;
    errorEl.textContent = message;
    document.body.dataset.error = message;
  };

  // Toolbar.
  const button = (label: string, title: string, onClick: () => void, attrs: Record<string, string> = {}) => {
    const b = el('button', undefined, label, { type: 'button', title, ...attrs });
    b.addEventListener('click', onClick);
    toolbar.append(b);
    return b;
  };
  const layoutButtons = {
    stack: button(
      'Stack',
      'One slice at a time (S)',
      () => void open(current.series!, 'stack', { ai: current.ai }),
      {
        'data-layout': 'stack',
      },
    ),
    mpr: button(
      'MPR',
      'Axial, sagittal and coronal (M)',
      () => void open(current.series!, 'mpr', { ai: current.ai }),
      {
        'data-layout': 'mpr',
      },
    ),
  };
  toolbar.append(el('span', 'rad-sep'));
  const toolButtons = new Map<MouseTool, HTMLButtonElement>();
  for (const t of TOOLS)
    toolButtons.set(
      t.id,
      button(t.label, `${t.label} (${t.key.toUpperCase()})`, () => setTool(t.id), { 'data-tool': t.id }),
    );
  toolbar.append(el('span', 'rad-sep'));
  for (const p of PRESETS)
    button(p.label, `${p.label} window (${p.key})`, () => applyPreset(p.id), { 'data-preset': p.id });
  toolbar.append(el('span', 'rad-sep'));
  button('Invert', 'Invert (I)', () => view.display?.toggleInvert(), { 'data-action': 'invert' });
  button('Reset', 'Reset (R)', () => view.display?.reset(), { 'data-action': 'reset' });

  const setTool = (tool: MouseTool): void => {
    view.display?.setTool(tool);
    for (const [id, b] of toolButtons) b.setAttribute('aria-pressed', String(view.display?.tool === id));
  };
  const applyPreset = (id: string): void => {
    const d = view.display;
    if (!d) return;
    const p = PRESETS.find((x) => x.id === id);
    if (p?.ww !== undefined && p.wc !== undefined) d.setVoi(toRange(p.ww, p.wc));
    else {
      const values = d.pixelValues();
      if (values) d.setVoi(autoWindow(values));
    }
  };

  // The study's header and series.
  const [study] = await client.json(`/studies?StudyInstanceUID=${studyUid}&includefield=00081030`);
  if (!study) throw new Error(`study ${studyUid} not found`);
  studyInfo.append(
    el('strong', undefined, personName(str(study, TAG.PatientName)) || '(no name)'),
    el('span', undefined, `${str(study, TAG.PatientID)} · ${dicomDate(str(study, TAG.StudyDate))}`),
    el('span', undefined, str(study, TAG.StudyDescription)),
  );
  document.title = `${personName(str(study, TAG.PatientName))} — MedStream radiology`;
  const series = await client.json(`/studies/${studyUid}/series`);
  const items = new Map<string, { li: HTMLLIElement; bar: HTMLProgressElement; label: HTMLElement }>();
  for (const s of series) {
    const uid = str(s, TAG.SeriesInstanceUID);
    const li = el('li', 'rad-series-item', undefined, { 'data-series': uid });
    const a = el('a', undefined, undefined, { href: formatHash({ study: studyUid, series: uid }) });
    const bar = el('progress', undefined, undefined, { max: '1', value: '0', 'aria-label': 'Loading' });
    const label = el('small', undefined, `${str(s, TAG.NumberOfSeriesRelatedInstances)} images`);
    a.append(
      el('img', undefined, undefined, {
        alt: '',
        width: '64',
        height: '64',
        src: client.linkUrl(`/studies/${studyUid}/series/${uid}/thumbnail?viewport=64,64`),
      }),
      el(
        'span',
        undefined,
        `${str(s, TAG.Modality)} ${str(s, TAG.SeriesNumber)} ${str(s, TAG.SeriesDescription)}`,
      ),
      label,
      bar,
    );
    li.append(a);
    seriesList.append(li);
    items.set(uid, { li, bar, label });
  }

  const loadedSeries = new Map<string, LoadedSeries>();
  // Progressive stages unless the link says `stages=off`; per series, only where the server makes
  // HTJ2K of it (asked once, on its first frame).
  const stagesWanted = state.stages !== 'off';
  const stagesBySeries = new Map<string, Promise<boolean>>();
  let detachAi: (() => void) | undefined;
  const open = async (seriesUid: string, layout: Layout, initial: ViewState = {}): Promise<void> => {
    detachAi?.();
    detachAi = undefined;
    segmentationPanel.detach();
    view.display?.destroy();
    view.display = undefined;
    errorEl.hidden = true;
    delete document.body.dataset.error;
    document.body.dataset.state = 'loading';
    for (const [uid, it] of items) it.li.classList.toggle('active', uid === seriesUid);
    try {
      let s = loadedSeries.get(seriesUid);
      if (!s) {
        s = await loadSeries(client, studyUid, seriesUid);
        loadedSeries.set(seriesUid, s);
      }
      if (layout === 'mpr' && !s.reconstructable) {
        showError('This series cannot be shown as MPR (no consistent slice geometry): showing the stack.');
        layout = 'stack';
      }
      viewportsEl.className = `rad-viewports ${layout}`;
      const names = layout === 'stack' ? ['Stack'] : ['Axial', 'Sagittal', 'Coronal'];
      const elements = names.map((n) => {
        const div = el('div', 'rad-viewport', undefined, {
          'aria-label': `${n} viewport`,
          'data-viewport': n.toLowerCase(),
        });
        div.addEventListener('contextmenu', (e) => e.preventDefault());
        return div;
      });
      viewportsEl.replaceChildren(...elements);
      for (const [l, b] of Object.entries(layoutButtons))
        b.setAttribute('aria-pressed', String(l === layout));
      let stages = stagesBySeries.get(seriesUid);
      if (!stages) {
        stages = stagesWanted ? derivedAvailable(client, s.imageIds[0]) : Promise.resolve(false);
        stagesBySeries.set(seriesUid, stages);
      }
      const stagesOn = await stages;
      document.body.dataset.stages = stagesOn ? 'on' : stagesWanted ? 'unavailable' : 'off';
      current = { study: studyUid, series: seriesUid, layout, stages: state.stages };
      view.display = await SeriesDisplay.open(
        s,
        layout,
        elements,
        {
          onView: ({ slice, slices, ww, wc }) => {
            overlay.textContent = `${slice + 1} / ${slices}${ww !== undefined ? `  W ${Math.round(ww)} L ${Math.round(wc!)}` : ''}`;
            current = { ...current, slice, ww, wc, ai: initial.ai };
            history.replaceState(null, '', formatHash(current) || '#');
          },
          onError: showError,
        },
        { slice: initial.slice, ww: initial.ww, wc: initial.wc },
        stagesOn ? { token: client.token } : undefined,
      );
      setTool(layout === 'mpr' ? 'crosshairs' : 'wl');
      await segmentationPanel.attach(view.display);
      document.body.dataset.layout = layout;
      // An AI result over the series (ai-overlay.ts); its failure is shown, the series stays.
      if (initial.ai)
        detachAi = await attachAiOverlay(view.display, elements, initial.ai, client).catch((e: unknown) => {
          showError(`AI overlay: ${messageOf(e)}`);
          return undefined;
        });
      document.body.dataset.state = 'ready';
    } catch (err) {
      showError(`Series failed to load: ${messageOf(err)}`);
      document.body.dataset.state = 'error';
    }
  };

  // Per-series progress: frames of the shown series loaded so far.
  const timer = setInterval(() => {
    const d = view.display;
    if (!d) return;
    const total = d.series.imageIds.length;
    view.progress.set(d.series.seriesUid, { loaded: d.loadedCount, total });
    const it = items.get(d.series.seriesUid);
    if (it) {
      it.bar.value = total ? d.loadedCount / total : 0;
      it.label.textContent = `${d.loadedCount} / ${total} loaded`;
    }
  }, 250);

  const onKey = (e: KeyboardEvent): void => {
    if (e.target instanceof HTMLInputElement || e.ctrlKey || e.metaKey || e.altKey) return;
    const d = view.display;
    const k = e.key;
    const preset = PRESETS.find((p) => p.key === k);
    const tool = TOOLS.find((t) => t.key === k.toLowerCase());
    if (preset) applyPreset(preset.id);
    else if (tool) setTool(tool.id);
    else if (k === 'ArrowUp' || k === 'ArrowRight' || k === 'PageDown') void d?.scroll(1);
    else if (k === 'ArrowDown' || k === 'ArrowLeft' || k === 'PageUp') void d?.scroll(-1);
    else if (k === 'Home') void d?.setSlice(0);
    else if (k === 'End') void d?.setSlice(Number.MAX_SAFE_INTEGER);
    else if (k.toLowerCase() === 'i') d?.toggleInvert();
    else if (k.toLowerCase() === 'r') d?.reset();
    else if (k.toLowerCase() === 's' && current.series)
      void open(current.series, 'stack', { ai: current.ai });
    else if (k.toLowerCase() === 'm' && current.series) void open(current.series, 'mpr', { ai: current.ai });
    else return;
    e.preventDefault();
  };
  const onResize = (): void => view.display?.resize();
  window.addEventListener('keydown', onKey);
  window.addEventListener('resize', onResize);

  const first = state.series ?? str(series[0] ?? {}, TAG.SeriesInstanceUID);
  if (!first) throw new Error('the study has no series');
  await open(first, state.layout ?? 'stack', state);
  return view;
}
