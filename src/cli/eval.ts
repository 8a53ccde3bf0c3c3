// `medstream eval --pred P --truth T [--labels 1,2,...] [--json]`: Dice per label (smooth = 1, as
// MedSAM2's dice_multi_class), their mean, and each label's volume in both masks. Masks whose
// dimensions or affines differ are refused (exit 2): resampling would hide a geometry bug.

import { BadRequest } from '../errors.js';
import { evaluateMasks } from '../segment/evaluate.js';
import { FrameSampleDecoder } from '../volumes/frame-samples.js';
import type { Config } from './config.js';
import { type CommandArgs, isInputError, str } from './segment.js';
import { createVolumeLoader } from './segment-io.js';

export const EVAL_FLAGS = {
  pred: { type: 'string' },
  truth: { type: 'string' },
  labels: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Record<string, { type: 'string' | 'boolean' }>;

/** Parses `1,2,5` into distinct positive integers. */
export function parseLabels(text: string): number[] {
  const labels = text.split(',').map((s) => Number(s.trim()));
  if (labels.length === 0 || labels.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new BadRequest(`labels "${text}" are not positive integers separated by commas`);
  }
  return [...new Set(labels)];
}

export async function runEval(config: Config, args: CommandArgs): Promise<number> {
  const decoder = new FrameSampleDecoder({ workers: 1 });
  try {
    const pred = str(args.values, 'pred');
    const truth = str(args.values, 'truth');
    if (pred === undefined || truth === undefined) throw new BadRequest('--pred and --truth are required');
    const labelsText = str(args.values, 'labels');
    const labels = labelsText === undefined ? undefined : parseLabels(labelsText);
    const loader = await createVolumeLoader(config, decoder);
    try {
      const p = await loader.load(pred);
      const t = await loader.load(truth);
      const result = evaluateMasks(p, t, labels);
      if (args.values.json === true) {
        process.stdout.write(`${JSON.stringify({ pred, truth, ...result }, null, 2)}\n`);
      } else {
        const lines = ['label  dice    pred_ml   truth_ml  pred_voxels  truth_voxels'];
        for (const s of result.labels) {
          lines.push(
            `${String(s.label).padEnd(6)} ${s.dice.toFixed(4)}  ${s.predMillilitres.toFixed(2).padStart(8)}  ${s.truthMillilitres.toFixed(2).padStart(8)}  ${String(s.predVoxels).padStart(11)}  ${String(s.truthVoxels).padStart(12)}`,
          );
        }
        lines.push(`mean   ${result.meanDice.toFixed(4)}`);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      return 0;
    } finally {
      await loader.close();
    }
  } catch (e) {
    if (isInputError(e)) {
      process.stderr.write(`medstream eval: ${e.message}\n`);
      return 2;
    }
    throw e;
  } finally {
    await decoder.close();
  }
}
