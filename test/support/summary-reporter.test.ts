// The closing line CI reads ("N passed, N failed[, N skipped]") never hides a failure: a real
// Vitest child process runs tiny fixture files in a temporary folder — a beforeAll that throws
// (as when redis-server is missing), a failing describe hook, a failing afterAll, a file that does
// not load, a test that skips itself, a stray rejection — with only this reporter, and the line
// must count each as failed while `.skip`/`.todo` and tests left out by `-t` stay skipped.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPORTER = fileURLToPath(new URL('./summary-reporter.ts', import.meta.url));
const VITEST = fileURLToPath(new URL('../../node_modules/vitest/vitest.mjs', import.meta.url));

// Plain JavaScript with Vitest's globals, so the fixtures need nothing resolved from the temp folder.
const FIXTURES: Record<string, string> = {
  'a-passing.test.mjs': `
    it('passes', () => { expect(1).toBe(1); });
    it.skip('written as skip', () => {});
    it.todo('written as todo');`,
  'b-before-all.test.mjs': `
    beforeAll(() => { throw new Error('redis-server not found'); });
    it('one', () => {});
    it('two', () => {});
    it('three', () => {});`,
  'c-suite-hook.test.mjs': `
    describe('with a failing hook', () => {
      beforeAll(() => { throw new Error('suite setup failed'); });
      it('x', () => {});
      it('y', () => {});
    });
    it('outside', () => {});`,
  'd-dynamic-skip.test.mjs': `
    it('skips itself', (ctx) => { ctx.skip(); });`,
  'e-after-all.test.mjs': `
    afterAll(() => { throw new Error('teardown failed'); });
    it('passes before teardown', () => {});`,
  'f-load-error.test.mjs': `
    throw new Error('cannot load');`,
  'g-failing.test.mjs': `
    it('fails', () => { expect(1).toBe(2); });`,
  'h-unhandled.test.mjs': `
    it('leaves a rejection behind', () => { Promise.reject(new Error('nobody awaited this')); });`,
};

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-reporter-'));
  for (const [name, text] of Object.entries(FIXTURES)) await writeFile(path.join(dir, name), text);
  await writeFile(
    path.join(dir, 'vitest.config.mjs'),
    `export default { test: { globals: true, include: ['*.test.mjs'], reporters: [${JSON.stringify(REPORTER)}] } };\n`,
  );
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs Vitest on the fixture folder; resolves with its exit code and stdout lines. */
function vitest(args: string[]): Promise<{ code: number; lines: string[] }> {
  // Without the parent's VITEST_* / TEST variables, the child is a top-level run of its own.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'TEST'),
  );
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [VITEST, 'run', '--root', dir, ...args],
      { env, timeout: 60_000 },
      (error, stdout) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? Number(error.code) : 0, lines: stdout.trim().split('\n') });
      },
    );
  });
}

describe('the summary line', () => {
  it('counts failed hooks, files that do not load, self-skips and unhandled errors as failed', async () => {
    const run = await vitest([]);
    expect(run.code).toBe(1);
    // passed: 'passes', 'outside', 'passes before teardown', 'leaves a rejection behind' = 4.
    // failed: b's file error + its 3 tests, c's suite error + its 2 tests, d's self-skip, e's
    // afterAll, f's load error, g's test, h's unhandled rejection = 12.
    // skipped: the .skip and the .todo = 2.
    expect(run.lines.at(-1)).toBe('4 passed, 12 failed, 2 skipped');
    const notes = run.lines.slice(0, -1).join('\n');
    expect(notes).toContain('b-before-all.test.mjs: redis-server not found');
    expect(notes).toContain('b-before-all.test.mjs: 3 test(s) did not run');
    expect(notes).toContain('c-suite-hook.test.mjs > with a failing hook: suite setup failed');
    expect(notes).toContain('d-dynamic-skip.test.mjs: 1 test(s) did not run');
    expect(notes).toContain('e-after-all.test.mjs: teardown failed');
    expect(notes).toContain('f-load-error.test.mjs: cannot load');
    expect(notes).toContain('unhandled error: nobody awaited this');
  });

  it('a file whose beforeAll fails alone never reads "0 failed"', async () => {
    const run = await vitest(['b-before-all']);
    expect(run.code).toBe(1);
    expect(run.lines.at(-1)).toBe('0 passed, 4 failed');
  });

  it('tests left out by -t are skipped, not failed', async () => {
    const run = await vitest(['a-passing', 'c-suite-hook', '-t', 'outside']);
    expect(run.code).toBe(0);
    expect(run.lines.at(-1)).toBe('1 passed, 0 failed, 5 skipped');
  });
});
