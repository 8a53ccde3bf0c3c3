// `medstream segment --batch cases.csv --out-dir D`: the shape of MedSAM2's DeepLesion run. One
// CSV row per lesion (columns input, slice, box, and optionally window and label); the lesions of
// one input are combined (OR, or each its own label value when the label column is given) into
// one mask per input, plus D/summary.csv (file, key slice, box, window, engine, voxels, volume in
// mL, seconds). Every row is parsed before any work starts; outputs appear together at the end
// or not at all.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { BadRequest, MedStreamError } from '../errors.js';
import { segmentVolume } from '../segment/pipeline.js';
import { boxText, parseBox, parseSlice } from '../segment/request.js';
import { parseWindow } from '../segment/window.js';
import type { Box } from '../segment/engine.js';
import { FrameSampleDecoder } from '../volumes/frame-samples.js';
import { encodeNiftiMask } from '../volumes/nifti.js';
import type { Config } from './config.js';
import { type CommandArgs, parseLabel, str, summaryOf } from './segment.js';
import { createEngine } from './segment-engines.js';
import { AtomicOutputs, createVolumeLoader, maskNameFor } from './segment-io.js';
import { Progress } from './segment-progress.js';

export interface BatchRow {
  /** 1-based line number in the CSV (for messages). */
  line: number;
  input: string;
  slice: number;
  box: Box;
  window?: [number, number];
  label?: number;
}

/** Splits CSV text into records (RFC 4180: quoted fields, "" inside quotes, CRLF or LF). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      if (row.some((f) => f.trim() !== '')) rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (quoted) throw new BadRequest('the CSV ends inside a quoted field');
  row.push(field);
  if (row.some((f) => f.trim() !== '')) rows.push(row);
  return rows;
}

/** Parses and validates every row of a batch CSV (header: input, slice, box[, window][, label]). */
export function parseBatch(text: string, baseDir: string | undefined): BatchRow[] {
  const records = parseCsv(text);
  if (records.length < 2) throw new BadRequest('the batch CSV needs a header row and at least one case');
  const header = records[0].map((h) =>
    h
      .trim()
      .toLowerCase()
      .replace(/[\s-]+/g, '_'),
  );
  const col = (names: string[]) => header.findIndex((h) => names.includes(h));
  const at = {
    input: col(['input', 'file', 'image']),
    slice: col(['slice', 'key_slice']),
    box: col(['box', 'bbox']),
    window: col(['window']),
    label: col(['label']),
  };
  for (const name of ['input', 'slice', 'box'] as const) {
    if (at[name] < 0)
      throw new BadRequest(`the batch CSV has no "${name}" column (header: ${records[0].join(',')})`);
  }
  return records.slice(1).map((r, n) => {
    const line = n + 2;
    const cell = (i: number) => (i >= 0 ? (r[i] ?? '').trim() : '');
    try {
      const input = cell(at.input);
      if (input === '') throw new BadRequest('input is empty');
      // Box and window may also be written with ';' or spaces, so they need no quotes.
      const box = parseBox(cell(at.box).replace(/[;\s]+/g, ','));
      const windowText = cell(at.window);
      return {
        line,
        input: baseDir && !path.isAbsolute(input) ? path.join(baseDir, input) : input,
        slice: parseSlice(cell(at.slice)),
        box,
        window: windowText === '' ? undefined : parseWindow(windowText.replace(/[;\s]+/g, ',')),
        label: cell(at.label) === '' ? undefined : parseLabel(cell(at.label)),
      };
    } catch (e) {
      throw new BadRequest(`batch CSV line ${line}: ${(e as Error).message}`);
    }
  });
}

function csvField(value: unknown): string {
  const text = value === undefined ? '' : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export async function runSegmentBatch(config: Config, args: CommandArgs): Promise<number> {
  const v = args.values;
  const csvPath = str(v, 'batch') as string;
  const outDir = str(v, 'out-dir');
  if (outDir === undefined)
    throw new BadRequest('--batch needs --out-dir D (one mask per input and D/summary.csv)');
  if (str(v, 'input') !== undefined || str(v, 'out') !== undefined)
    throw new BadRequest('--batch replaces --input/--out; give one or the other');
  let text: string;
  try {
    text = await readFile(csvPath, 'utf8');
  } catch (e) {
    throw new BadRequest(`cannot read ${csvPath}: ${(e as Error).message}`);
  }
  // Local inputs are relative to the CSV's folder; storage keys stay as written.
  const rows = parseBatch(text, config.storage ? undefined : path.dirname(path.resolve(csvPath)));
  const groups = new Map<string, BatchRow[]>();
  for (const row of rows) groups.set(row.input, [...(groups.get(row.input) ?? []), row]);

  const progress = new Progress(process.stderr, v.quiet === true);
  const engine = await createEngine(str(v, 'engine') ?? 'classical', { modelDir: config.modelDir });
  const decoder = new FrameSampleDecoder({ workers: config.decodeWorkers || undefined });
  const loader = await createVolumeLoader(config, decoder);
  const outputs = new AtomicOutputs();
  const summary: ReturnType<typeof summaryOf>[] = [];
  const usedNames = new Set<string>();
  try {
    let index = 0;
    for (const [input, lesions] of groups) {
      index++;
      const label = `[${index}/${groups.size}] ${path.basename(input)}`;
      let volume;
      try {
        volume = await loader.load(input, (done, total) => progress.update(`${label} reading`, done, total));
      } catch (e) {
        if (e instanceof MedStreamError)
          throw new BadRequest(`batch CSV line ${lesions[0].line}: ${input}: ${e.message}`);
        throw e;
      }
      let name = maskNameFor(input);
      if (usedNames.has(name)) name = name.replace(/_mask\.nii\.gz$/, `_${index}_mask.nii.gz`);
      usedNames.add(name);
      const out = path.join(outDir, name);
      const combined = new Uint8Array(volume.data.length);
      for (const lesion of lesions) {
        let result;
        try {
          result = await segmentVolume(volume, lesion, engine, {
            onSlice: (event) => progress.update(`${label} slice ${event.slice} ${event.direction}`, 0, 1),
          });
        } catch (e) {
          if (e instanceof MedStreamError)
            throw new BadRequest(`batch CSV line ${lesion.line}: ${e.message}`);
          throw e;
        }
        const value = lesion.label ?? 1;
        for (let i = 0; i < combined.length; i++) if (result.mask[i]) combined[i] = value;
        summary.push(summaryOf(input, lesion.slice, boxText(lesion.box), engine.name, result, out, value));
        progress.line(
          `${label}: line ${lesion.line}: ${result.voxels} voxels, ${result.millilitres.toFixed(1)} mL, ${result.seconds.toFixed(2)} s`,
        );
      }
      await outputs.stage(path.join(outDir, name), encodeNiftiMask(volume, combined));
    }
    const columns = [
      'file',
      'keySlice',
      'box',
      'window',
      'engine',
      'label',
      'voxels',
      'volumeMl',
      'slices',
      'seconds',
      'stoppedForward',
      'stoppedBackward',
      'out',
    ] as const;
    const headerLine = [
      'file',
      'key_slice',
      'box',
      'window',
      'engine',
      'label',
      'voxels',
      'volume_ml',
      'slices',
      'seconds',
      'stopped_forward',
      'stopped_backward',
      'mask',
    ];
    const csv =
      [headerLine.join(','), ...summary.map((s) => columns.map((c) => csvField(s[c])).join(','))].join('\n') +
      '\n';
    await outputs.stage(path.join(outDir, 'summary.csv'), csv);
    const written = await outputs.commit();
    if (v.json === true) process.stdout.write(`${JSON.stringify({ cases: summary, written }, null, 2)}\n`);
    else
      process.stdout.write(
        `${summary.length} lesions in ${groups.size} inputs; wrote ${written.length} files to ${outDir} (summary.csv)\n`,
      );
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
