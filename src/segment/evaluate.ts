// Scoring a predicted label mask against a truth mask of the same geometry: Dice per label with
// smooth = 1 (MedSAM2's `dice_multi_class`: (2|P∩T| + 1) / (|P| + |T| + 1)), their mean, and each
// label's volume in millilitres. Masks on different grids are refused, never resampled silently.

import { BadRequest } from '../errors.js';
import { affinesEqual } from '../volumes/affine.js';
import type { Volume } from '../volumes/volume.js';
import { voxelMillilitres } from '../volumes/volume.js';

export interface LabelScore {
  label: number;
  dice: number;
  predVoxels: number;
  truthVoxels: number;
  predMillilitres: number;
  truthMillilitres: number;
}

export interface Evaluation {
  labels: LabelScore[];
  meanDice: number;
}

/** Refuses two volumes whose dimensions or affines differ (more than 1e-4 relative). */
export function checkSameGeometry(
  a: Pick<Volume, 'dims' | 'affine'>,
  b: Pick<Volume, 'dims' | 'affine'>,
  names = ['pred', 'truth'],
): void {
  if (a.dims.some((d, i) => d !== b.dims[i])) {
    throw new BadRequest(
      `${names[0]} is ${a.dims.join('x')} but ${names[1]} is ${b.dims.join('x')}: the masks have different geometry`,
    );
  }
  if (!affinesEqual(a.affine, b.affine)) {
    const show = (m: number[]) =>
      `[${m
        .slice(0, 12)
        .map((v) => +v.toFixed(4))
        .join(', ')}]`;
    throw new BadRequest(
      `${names[0]} and ${names[1]} have different affines (${show(a.affine)} vs ${show(b.affine)}): the masks have different geometry`,
    );
  }
}

/** Dice with smooth = 1 of one label. */
export function dice(
  pred: ArrayLike<number>,
  truth: ArrayLike<number>,
  label = 1,
): { dice: number; pred: number; truth: number } {
  let p = 0;
  let t = 0;
  let both = 0;
  for (let i = 0; i < pred.length; i++) {
    const a = pred[i] === label;
    const b = truth[i] === label;
    if (a) p++;
    if (b) t++;
    if (a && b) both++;
  }
  return { dice: (2 * both + 1) / (p + t + 1), pred: p, truth: t };
}

/**
 * Scores `pred` against `truth` (same geometry, checked) for `labels`, default: every non-zero
 * label present in the truth (as dice_multi_class).
 */
export function evaluateMasks(pred: Volume, truth: Volume, labels?: number[]): Evaluation {
  checkSameGeometry(pred, truth);
  const wanted = labels ?? presentLabels(truth.data);
  if (wanted.length === 0)
    throw new BadRequest('the truth has no labelled voxels and no --labels were given');
  const ml = voxelMillilitres(truth);
  const scores = wanted.map((label) => {
    const d = dice(pred.data, truth.data, label);
    return {
      label,
      dice: d.dice,
      predVoxels: d.pred,
      truthVoxels: d.truth,
      predMillilitres: d.pred * ml,
      truthMillilitres: d.truth * ml,
    };
  });
  return { labels: scores, meanDice: scores.reduce((s, x) => s + x.dice, 0) / scores.length };
}

/** The distinct non-zero values, ascending. */
export function presentLabels(data: ArrayLike<number>): number[] {
  const seen = new Set<number>();
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) seen.add(data[i]);
  return [...seen].sort((a, b) => a - b);
}
