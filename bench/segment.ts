// `npm run bench -- segment`: Dice per engine per structure on the labelled fixture volumes
// (segment-cases.ts: example_ct_sm + example_seg, the 20-slice DICOM CT + example_seg_dicom), box
// from the truth's bounding box on the structure's middle slice plus a random 0..20 px margin
// (MedSAM2's mask2D_to_bbox), several seeds; and seconds per segmented slice. Engines: classical,
// plus sam, hybrid or medsam2 when BENCH_SEGMENT_ENGINES names them (BENCH_SEGMENT_MODEL_DIR: their model
// folder; medsam2 needs one). BENCH_SEGMENT_SEEDS (default 3) sets the seeds; BENCH_SEGMENT_HELDOUT=1
// adds the held-out TotalSegmentator labels, =only scores just those; BENCH_SEGMENT_STRUCTURES
// (comma-separated names, e.g. "liver,kidney R") keeps only the structures named.

import type { SegmentationEngine } from '../src/segment/engine.js';
import type { Benchmark, BenchmarkResult, Suite } from './harness.js';
import { median } from './harness.js';
import { type CaseScore, loadCases, scoreOne } from './segment-cases.js';
import { createEngine } from '../src/cli/segment-engines.js';
import { SharedEncodings } from '../src/segment/sam.js';

const SEEDS = Number(process.env.BENCH_SEGMENT_SEEDS ?? 3);
const ENGINES = (process.env.BENCH_SEGMENT_ENGINES ?? 'classical').split(',').map((s) => s.trim());
const MAX_SHIFT = 20;
const HELDOUT = process.env.BENCH_SEGMENT_HELDOUT ?? '';
const ONLY = process.env.BENCH_SEGMENT_STRUCTURES?.split(',').map((s) => s.trim());
/** Windows per engine: SAM sees a narrow soft-tissue window (SEGMENTATION-NOTES.md); classical works on HU. */
const WINDOWS: Record<string, [number, number] | undefined> = { sam: [-50, 150], hybrid: [-50, 150] };

const diceBenchmark: Benchmark = {
  name: 'segment-dice',
  title: `Box-prompted 3D segmentation: Dice (smooth 1) per structure, box = truth bbox on the middle slice + random 0-${MAX_SHIFT} px, ${SEEDS} seeds`,
  async run(): Promise<BenchmarkResult> {
    const cases = await loadCases();
    const rows: string[][] = [];
    const data: { engine: string; case: string; structure: string; scores: CaseScore[] }[] = [];
    for (const name of ENGINES) {
      const engine: SegmentationEngine = await createEngine(name, {
        modelDir: process.env.BENCH_SEGMENT_MODEL_DIR,
        // Each slice is encoded once per volume and window, whatever the structure and seed.
        sharedEncodings: new SharedEncodings(),
      });
      try {
        for (const c of cases) {
          const structures = [
            ...(HELDOUT === 'only' ? [] : c.structures),
            ...(HELDOUT === '1' || HELDOUT === 'only' ? c.heldOut : []),
          ].filter((s) => !ONLY || ONLY.includes(s.name));
          for (const s of structures) {
            const scores: CaseScore[] = [];
            for (let seed = 1; seed <= SEEDS; seed++) {
              const score = await scoreOne(engine, c, s, seed, {
                maxShift: MAX_SHIFT,
                window: WINDOWS[name],
              });
              if (score) scores.push(score);
            }
            data.push({ engine: name, case: c.name, structure: s.name, scores });
            const dice = scores.map((x) => x.dice);
            const mean = dice.reduce((a, b) => a + b, 0) / dice.length;
            const seconds =
              scores.reduce((a, x) => a + x.seconds, 0) / scores.reduce((a, x) => a + x.slicesVisited, 0);
            // Each row as it is measured, so a long run (sam: ~0.7 s per slice) shows progress.
            console.error(
              `segment: ${name} ${c.name} ${s.name}: Dice ${dice.map((d) => d.toFixed(3)).join(' ')}`,
            );
            rows.push([
              name,
              WINDOWS[name]?.join(',') ?? 'default',
              c.name,
              s.name,
              mean.toFixed(3),
              Math.min(...dice).toFixed(3),
              median(dice).toFixed(3),
              dice.map((d) => d.toFixed(2)).join(' '),
              seconds.toFixed(4),
            ]);
          }
        }
      } finally {
        await engine.close();
      }
    }
    return {
      name: 'segment-dice',
      title: diceBenchmark.title,
      tables: [
        {
          title: 'Dice per engine and structure (3D, after the largest component)',
          columns: [
            'engine',
            'window',
            'volume',
            'structure',
            'mean Dice',
            'min',
            'median',
            'per seed',
            's / slice',
          ],
          rows,
        },
      ],
      data,
    };
  },
};

export const segmentSuite: Suite = { name: 'segment', file: '', benchmarks: [diceBenchmark] };
