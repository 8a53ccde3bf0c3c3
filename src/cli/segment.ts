// `medstream segment`: box-prompted 3D segmentation of one volume (--input, --slice, --box) or of
// a batch (--batch cases.csv --out-dir D, segment-batch.ts), with the pipeline in segment/. Bad
// input (missing or malformed flags, a box outside the slice, a 2D or 4D input, NaN voxels) is a
// clear message and exit code 2; outputs appear complete or not at all (segment-io.ts).
//
//   medstream segment --input ct.nii.gz --slice 14 --box 45,27,104,85 [--window -160,240]
//                     [--engine classical] [--label 1] --out mask.nii.gz [--seg seg.dcm] [--json]

import { BadRequest, MedStreamError } from '../errors.js';
import { checkSegSource, encodeSegmentation } from '../segment/dicom-seg.js';
import { type SegmentResult, segmentVolume } from '../segment/pipeline.js';
import { boxText, parseBox, parseSlice } from '../segment/request.js';
import { parseWindow } from '../segment/window.js';
import { FrameSampleDecoder } from '../volumes/frame-samples.js';
import { encodeNiftiMask } from '../volumes/nifti.js';
import type { Config } from './config.js';
import { runSegmentBatch } from './segment-batch.js';
import { runSegmentVideo } from './segment-video.js';
import { createEngine } from './segment-engines.js';
import { AtomicOutputs, checkOutputPath, createVolumeLoader } from './segment-io.js';
import { Progress } from './segment-progress.js';

/** The command's own flags, for parseConfig. */
export const SEGMENT_FLAGS = {
  input: { type: 'string' },
  slice: { type: 'string' },
  box: { type: 'string' },
  window: { type: 'string' },
  engine: { type: 'string' },
  'model-dir': { type: 'string' },
  label: { type: 'string' },
  out: { type: 'string' },
  seg: { type: 'string' },
  batch: { type: 'string' },
  'out-dir': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  video: { type: 'string' },
  mask: { type: 'string' },
} as const satisfies Record<string, { type: 'string' | 'boolean' }>;

export interface CommandArgs {
  values: Record<string, string | string[] | boolean | undefined>;
  positionals: string[];
}

/** Errors that mean "the input or the request is wrong" (exit 2), not "something failed" (exit 1). */
export function isInputError(e: unknown): e is MedStreamError {
  return (
    e instanceof MedStreamError &&
    [
      'bad_request',
      'unsupported_format',
      'corrupt_file',
      'decode_error',
      'not_found',
      'invalid_id',
      'config_error',
    ].includes(e.code)
  );
}

export function str(values: CommandArgs['values'], name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Parses --label: an integer 1..255 (the value the mask stores). */
export function parseLabel(text: string | undefined): number {
  if (text === undefined) return 1;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 255)
    throw new BadRequest(`label "${text}" is not an integer 1..255`);
  return n;
}

export async function runSegment(config: Config, args: CommandArgs): Promise<number> {
  try {
    if (str(args.values, 'video') !== undefined) return await runSegmentVideo(config, args);
    if (str(args.values, 'batch') !== undefined) return await runSegmentBatch(config, args);
    return await runSingle(config, args);
  } catch (e) {
    if (isInputError(e)) {
      process.stderr.write(`medstream segment: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

async function runSingle(config: Config, args: CommandArgs): Promise<number> {
  const v = args.values;
  const need = (name: string): string => {
    const value = str(v, name);
    if (value === undefined) throw new BadRequest(`--${name} is required (or --batch cases.csv --out-dir D)`);
    return value;
  };
  const input = need('input');
  const slice = parseSlice(need('slice'));
  const box = parseBox(need('box'));
  const out = need('out');
  const window = str(v, 'window') === undefined ? undefined : parseWindow(str(v, 'window') as string);
  const label = parseLabel(str(v, 'label'));
  const json = v.json === true;
  await checkOutputPath(out, '--out');
  const segOut = str(v, 'seg');
  if (segOut !== undefined) await checkOutputPath(segOut, '--seg');
  const progress = new Progress(process.stderr, v.quiet === true);

  const engine = await createEngine(str(v, 'engine') ?? 'classical', { modelDir: config.modelDir });
  const decoder = new FrameSampleDecoder({ workers: config.decodeWorkers || undefined });
  const loader = await createVolumeLoader(config, decoder);
  const outputs = new AtomicOutputs();
  try {
    const volume = await loader.load(input, (done, total) => progress.update('reading', done, total));
    // A SEG must reference the source's instances: refuse a source it cannot before segmenting.
    if (segOut !== undefined) checkSegSource(volume);
    let visited = 0;
    const result = await segmentVolume(volume, { slice, box, window }, engine, {
      onSlice: () => progress.update(`segmenting (${engine.name})`, ++visited, volume.dims[2]),
    });
    progress.line(
      `segmented ${result.voxels} voxels (${result.millilitres.toFixed(1)} mL) in ${result.seconds.toFixed(2)} s`,
    );
    const mask = label === 1 ? result.mask : result.mask.map((x) => (x ? label : 0));
    await outputs.stage(out, encodeNiftiMask(volume, mask));
    if (segOut !== undefined) {
      const segBytes = encodeSegmentation(volume, result.mask, {
        algorithmName: `medstream ${engine.name}`,
        label: `label ${label}`,
      });
      await outputs.stage(segOut, segBytes);
    }
    await outputs.commit();
    const summary = summaryOf(input, slice, boxText(box), engine.name, result, out, label);
    if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else {
      process.stdout.write(
        `${out}: ${summary.voxels} voxels, ${summary.volumeMl} mL, slices ${summary.slices ?? 'none'}, ` +
          `window ${summary.window}, ${summary.seconds} s (${engine.name}; stopped ${summary.stoppedForward} / ${summary.stoppedBackward})\n`,
      );
    }
    return 0;
  } catch (e) {
    await outputs.discard();
    throw e;
  } finally {
    await loader.close();
    await decoder.close();
    await engine.close();
  }
}

/** One row of the summary (stdout --json, batch summary.csv). */
export function summaryOf(
  input: string,
  slice: number,
  box: string,
  engine: string,
  result: SegmentResult,
  out: string,
  label = 1,
) {
  return {
    file: input,
    keySlice: slice,
    box,
    window: result.window.join(','),
    engine,
    label,
    voxels: result.voxels,
    volumeMl: Number(result.millilitres.toFixed(3)),
    slices: result.slices?.join('-'),
    seconds: Number(result.seconds.toFixed(3)),
    stoppedForward: `${result.stopped.forward.reason}@${result.stopped.forward.at}`,
    stoppedBackward: `${result.stopped.backward.reason}@${result.stopped.backward.at}`,
    out,
  };
}
