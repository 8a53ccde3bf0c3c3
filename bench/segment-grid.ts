// `npx tsx bench/segment-grid.ts`: the classical engine's main settings (reach, opening, σ width)
// over a small grid, mean Dice per structure over 3 seeds on the labelled fixtures (the segment
// suite's protocol). Written to investigate the right kidney (issue 18): it shows how much the
// settings move each structure, all evaluated on the same volumes they would be chosen on.

import { ClassicalEngine } from '../src/segment/classical.js';
import { loadCases, scoreOne } from './segment-cases.js';

const SEEDS = 3;

async function main(): Promise<void> {
  const cases = await loadCases();
  const header = ['reach mm', 'open mm', 'σ'];
  for (const c of cases) for (const s of c.structures) header.push(`${c.name.split(' ')[0]} ${s.name}`);
  process.stdout.write(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n`);
  for (const reachMm of [4, 8]) {
    for (const openMm of [2, 5]) {
      for (const sigmas of [1.5, 2]) {
        const engine = new ClassicalEngine({ reachMm, openMm });
        const row = [String(reachMm), String(openMm), String(sigmas)];
        for (const c of cases) {
          for (const s of c.structures) {
            let sum = 0;
            for (let seed = 1; seed <= SEEDS; seed++) {
              const score = await scoreOne(engine, c, s, seed, { maxShift: 20, pipeline: { sigmas } });
              sum += score?.dice ?? 0;
            }
            row.push((sum / SEEDS).toFixed(3));
          }
        }
        process.stdout.write(`| ${row.join(' | ')} |\n`);
      }
    }
  }
}

await main();
