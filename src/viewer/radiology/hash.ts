// Deep links of the radiology viewer: `#study=…&series=…&slice=…&ww=…&wc=…&layout=mpr&stages=off`.
// The hash (never sent to the server) also carries a DICOMweb token given as `#token=…`.

export interface ViewState {
  study?: string;
  series?: string;
  /** A series result of radiology inference shown over the stack (ai-overlay.ts). */
  ai?: string;
  /** Zero-based index in the displayed stack. */
  slice?: number;
  ww?: number;
  wc?: number;
  layout?: 'stack' | 'mpr';
  /** `off`: plain /frames/ instead of the progressive stages (stages.ts). */
  stages?: 'off';
}

export function parseHash(hash: string): ViewState {
  const p = new URLSearchParams(hash.replace(/^#/, ''));
  const n = (k: string): number | undefined => {
    const v = p.get(k);
    if (v === null || v === '') return undefined;
    const x = Number(v);
    return Number.isFinite(x) ? x : undefined;
  };
  const slice = n('slice');
  const ww = n('ww');
  return {
    study: p.get('study') || undefined,
    series: p.get('series') || undefined,
    ai: p.get('ai') || undefined,
    slice: slice !== undefined && slice >= 0 ? Math.floor(slice) : undefined,
    ww: ww !== undefined && ww > 0 ? ww : undefined,
    wc: n('wc'),
    layout: p.get('layout') === 'mpr' ? 'mpr' : p.get('layout') === 'stack' ? 'stack' : undefined,
    stages: p.get('stages') === 'off' ? 'off' : undefined,
  };
}

export function formatHash(s: ViewState): string {
  const p = new URLSearchParams();
  if (s.study) p.set('study', s.study);
  if (s.series) p.set('series', s.series);
  if (s.ai) p.set('ai', s.ai);
  if (s.slice !== undefined) p.set('slice', String(s.slice));
  if (s.ww !== undefined) p.set('ww', String(Math.round(s.ww)));
  if (s.wc !== undefined) p.set('wc', String(Math.round(s.wc)));
  if (s.layout === 'mpr') p.set('layout', 'mpr');
  if (s.stages === 'off') p.set('stages', 'off');
  const q = p.toString();
  return q ? `#${q}` : '';
}
