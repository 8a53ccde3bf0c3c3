// `medstream index` as a user runs it (a child process): a JSON summary and report of a scan of a
// directory into the SQLite catalog under --data-dir, the text summary of a second scan that
// finds nothing changed, and the exit codes and messages of storage and catalog it cannot use.

import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';

describe('medstream index', () => {
  let tmp: string;
  let storage: string;
  let dataDir: string;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'medstream-index-cli-'));
    storage = path.join(tmp, 'storage');
    dataDir = path.join(tmp, 'data');
    const ctDir = fixture('volumes/ct-dicom-j2k');
    await mkdir(path.join(storage, 'ct'), { recursive: true });
    await mkdir(path.join(storage, 'wsi'), { recursive: true });
    for (const name of (await readdir(ctDir)).slice(0, 4)) {
      await copyFile(path.join(ctDir, name), path.join(storage, 'ct', name));
    }
    for (const name of ['boxes_0.dcm', 'boxes_1.dcm']) {
      await copyFile(fixture(`wsi/openslide/${name}`), path.join(storage, 'wsi', name));
    }
    await writeFile(path.join(storage, 'README.txt'), 'scans from the PACS export\n');
    // A DICOM file cut inside its header.
    const header = (await readFile(fixture('wsi/openslide/boxes_0.dcm'))).subarray(0, 400);
    await writeFile(path.join(storage, 'wsi', 'cut.dcm'), header);
  });
  afterAll(() => rm(tmp, { recursive: true, force: true }));

  it('--report --json: the summary, the catalog counts and the problems; a re-run finds all unchanged', async () => {
    const run = await runMedstream(['index', storage, '--data-dir', dataDir, '--report', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as {
      catalog: string;
      summary: Record<string, unknown>;
      counts: Record<string, number>;
      problems: { key: string; kind: string; reason: string }[];
    };
    expect(out.summary).toMatchObject({
      listed: 8,
      indexed: 6,
      unchanged: 0,
      other: 1,
      failed: 1,
      removed: 0,
      complete: true,
    });
    expect(out.counts).toEqual({ studies: 2, series: 2, instances: 6, errors: 1, objects: 8 });
    expect(out.problems).toEqual([
      {
        key: 'wsi/cut.dcm',
        kind: 'error',
        reason: expect.stringMatching(/^corrupt_file: wsi\/cut\.dcm: /),
        indexedAt: expect.any(String),
      },
    ]);
    // The catalog is a SQLite file under --data-dir that the server (or anyone) can open.
    expect(out.catalog).toMatch(new RegExp(`^sqlite:${dataDir}/catalog-[0-9a-f]{12}\\.sqlite$`));
    const catalog = await Catalog.open(out.catalog);
    try {
      expect((await catalog.counts()).instances).toBe(6);
    } finally {
      await catalog.close();
    }

    const again = await runMedstream(['index', storage, '--data-dir', dataDir]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('0 indexed, 8 unchanged, 0 not DICOM, 0 removed, 0 failed');
    expect(again.stdout).toContain('catalog: 2 studies, 2 series, 6 instances, 1 errors');
    expect(again.stdout).toContain('medstream index --report lists the errors');
  });

  it('storage or a catalog it cannot use: exit 2 (configuration) or 1 (unreachable), with a message', async () => {
    // Three child processes (each loads the CLI): the user-facing cases, not every ConfigError.
    const [scheme, missing, unreachable] = await Promise.all([
      runMedstream(['index', 'ftp://example.org/x', '--data-dir', dataDir]),
      runMedstream(['index', path.join(tmp, 'no-such-dir'), '--data-dir', dataDir]),
      runMedstream(['index', storage, '--catalog', 'postgres://medstream@127.0.0.1:1/catalog']),
    ]);
    expect(scheme.code).toBe(2);
    expect(scheme.stderr).toMatch(/^medstream: .*unknown scheme 'ftp:'/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^medstream: storage root .*no-such-dir cannot be resolved/);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(
      /catalog database postgres:\/\/medstream@127\.0\.0\.1:1\/catalog unreachable/,
    );
    for (const run of [scheme, missing, unreachable]) {
      expect(run.stdout).toBe('');
      expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});
