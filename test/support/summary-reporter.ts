// Prints one closing line, "N passed, N failed[, N skipped]", after Vitest's own summary, so
// that CI and humans read the same counts whatever the default reporter's layout. The line never
// hides a failure: a file or suite that failed outside its tests (a throwing beforeAll/afterAll,
// a file that does not load), each test that should have run and did not, and each unhandled
// error count as failed; only tests written as `.skip`/`.todo` (or left out by `-t`/`.only`)
// count as skipped. Tested by test/support/summary-reporter.test.ts.
import type { Reporter, SerializedError, TestCase, TestModule, TestSuite } from 'vitest/node';

export interface SummaryCounts {
  passed: number;
  failed: number;
  skipped: number;
  /** One line per failure that is not a failed test: what failed outside a test, what did not run. */
  notes: string[];
}

/** Skipped on purpose: `.skip`, `.todo`, or filtered out (`-t`, `.only` elsewhere) — all set the mode. */
function skippedOnPurpose(test: TestCase): boolean {
  return test.options.mode === 'skip' || test.options.mode === 'todo';
}

export function countResults(
  testModules: ReadonlyArray<TestModule>,
  unhandledErrors: ReadonlyArray<SerializedError> = [],
): SummaryCounts {
  const counts: SummaryCounts = { passed: 0, failed: 0, skipped: 0, notes: [] };
  for (const mod of testModules) {
    const containers: Array<TestModule | TestSuite> = [mod, ...mod.children.allSuites()];
    for (const container of containers) {
      const errors = container.errors();
      if (errors.length > 0) {
        counts.failed++;
        const where =
          container.type === 'module'
            ? mod.relativeModuleId
            : `${mod.relativeModuleId} > ${container.fullName}`;
        counts.notes.push(`${where}: ${errors[0].message ?? 'failed'}`);
      } else if (
        container.type === 'module' &&
        container.state() === 'failed' &&
        container.children.size === 0
      ) {
        counts.failed++; // a file that failed to load without reporting an error
        counts.notes.push(`${mod.relativeModuleId}: failed to load`);
      }
    }
    let notRun = 0;
    for (const test of mod.children.allTests()) {
      const state = test.result().state;
      if (state === 'passed') counts.passed++;
      else if (state === 'skipped' && skippedOnPurpose(test)) counts.skipped++;
      else {
        counts.failed++;
        if (state !== 'failed') notRun++; // a failed hook, ctx.skip(), or never finished
      }
    }
    if (notRun > 0) counts.notes.push(`${mod.relativeModuleId}: ${notRun} test(s) did not run`);
  }
  for (const error of unhandledErrors) {
    counts.failed++;
    counts.notes.push(`unhandled error: ${error.message ?? String(error)}`);
  }
  return counts;
}

export function summaryLine({ passed, failed, skipped }: SummaryCounts): string {
  return `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`;
}

export default class SummaryReporter implements Reporter {
  onTestRunEnd(
    testModules: ReadonlyArray<TestModule>,
    unhandledErrors: ReadonlyArray<SerializedError>,
  ): void {
    const counts = countResults(testModules, unhandledErrors);
    const notes = counts.notes.map((note) => `  counted as failed: ${note}\n`).join('');
    process.stdout.write(`\n${notes}${summaryLine(counts)}\n`);
  }
}
