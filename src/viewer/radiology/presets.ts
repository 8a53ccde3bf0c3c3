// Window presets (width / centre in Hounsfield units for CT) and the "auto" window for MR and
// other modalities without calibrated units: the 1st to 99th percentile of the shown pixels.

export interface WindowPreset {
  id: string;
  label: string;
  key: string;
  ww?: number;
  wc?: number;
}

export const PRESETS: WindowPreset[] = [
  { id: 'soft', label: 'Soft tissue', key: '1', ww: 400, wc: 40 },
  { id: 'lung', label: 'Lung', key: '2', ww: 1500, wc: -600 },
  { id: 'bone', label: 'Bone', key: '3', ww: 2000, wc: 300 },
  { id: 'brain', label: 'Brain', key: '4', ww: 80, wc: 40 },
  { id: 'auto', label: 'Auto (MR)', key: '5' },
];

/** Lower and upper bound holding the 1st to 99th percentile of `values` (a sample of them). */
export function autoWindow(values: ArrayLike<number>): { lower: number; upper: number } {
  const step = Math.max(1, Math.floor(values.length / 65536));
  const sample: number[] = [];
  for (let i = 0; i < values.length; i += step) sample.push(values[i]);
  sample.sort((a, b) => a - b);
  if (sample.length === 0) return { lower: 0, upper: 1 };
  const lower = sample[Math.floor(sample.length * 0.01)];
  const upper = sample[Math.min(sample.length - 1, Math.floor(sample.length * 0.99))];
  return upper > lower ? { lower, upper } : { lower, upper: lower + 1 };
}

export const toRange = (ww: number, wc: number): { lower: number; upper: number } => ({
  lower: wc - ww / 2,
  upper: wc + ww / 2,
});

export const fromRange = (r: { lower: number; upper: number }): { ww: number; wc: number } => ({
  ww: r.upper - r.lower,
  wc: (r.upper + r.lower) / 2,
});
