// The catalog's bookkeeping on both databases (SQLite file, real PostgreSQL 15): versioned
// migrations (idempotent, concurrent, a newer schema refused), batches of indexing results,
// listing versions, removal of unseen and given objects with their empty series and studies,
// duplicate SOP Instance UIDs (one served, both reported, the twin promoted), and the counts
// the QIDO layer computes its attributes from. The records come from real fixture headers.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalog, type IndexBatch } from '../../src/catalog/catalog.js';
import type { InstanceRecord } from '../../src/catalog/record.js';
import { SCHEMA_VERSION } from '../../src/catalog/schema.js';
import { ConfigError } from '../../src/errors.js';
import { DIALECTS, startBackend, type CatalogBackend } from '../support/catalog-backends.js';
import { ctFixtureRecords, fixtureRecord, vary } from '../support/catalog-records.js';

const U = '1.2.826.0.1.3680043.10.543';

describe.each(DIALECTS)('catalog on %s', (dialect) => {
  let backend: CatalogBackend;
  let wsi: InstanceRecord;
  let ct: InstanceRecord[];
  const open: Catalog[] = [];

  beforeAll(async () => {
    backend = await startBackend(dialect);
    wsi = await fixtureRecord('wsi/openslide/boxes_0.dcm', 'wsi/boxes_0.dcm');
    ct = await ctFixtureRecords('ct');
  });
  afterAll(async () => {
    for (const c of open) await c.close().catch(() => undefined);
    await backend?.stop();
  });

  const fresh = async (): Promise<Catalog> => {
    const catalog = await Catalog.open(await backend.fresh());
    open.push(catalog);
    return catalog;
  };
  const batch = (b: Partial<IndexBatch>): IndexBatch => ({ seen: [], instances: [], others: [], ...b });
  const instanceKeys = async (catalog: Catalog, studyUids?: string[]) =>
    (
      await catalog.search({
        level: 'instance',
        matches: [],
        fuzzy: false,
        studyUids,
        limit: 1000,
        offset: 0,
      })
    ).rows.map((r) => r.key);

  describe('migrations', () => {
    it('creates the schema once: opening again changes nothing', async () => {
      const location = await backend.fresh();
      const first = await Catalog.open(location);
      expect(await first.counts()).toEqual({ studies: 0, series: 0, instances: 0, errors: 0, objects: 0 });
      await first.applyBatch(batch({ instances: [wsi] }), await first.beginScan());
      await first.close();
      const second = await Catalog.open(location);
      open.push(second);
      const versions = await second.sql.all<{ version: number }>('SELECT version FROM catalog_migrations');
      expect(versions.map((v) => Number(v.version))).toEqual([SCHEMA_VERSION]);
      expect((await second.counts()).instances).toBe(1);
    });

    it('refuses a catalog written by a newer MedStream', async () => {
      const location = await backend.fresh();
      const catalog = await Catalog.open(location);
      await catalog.sql.run('INSERT INTO catalog_migrations (version, applied_at) VALUES (?, ?)', [
        SCHEMA_VERSION + 1,
        'later',
      ]);
      await catalog.close();
      const error = await Catalog.open(location).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/schema version 2, newer than this MedStream \(1\)/);
    });
  });

  it('records a batch: versions, counts, errors; beginScan counts up', async () => {
    const catalog = await fresh();
    const s1 = await catalog.beginScan();
    expect(await catalog.beginScan()).toBe(s1 + 1);
    expect(await catalog.currentScan()).toBe(s1 + 1);
    await catalog.applyBatch(
      batch({
        instances: [wsi, ...ct],
        others: [
          { key: 'notes.txt', version: '5-1', size: 5, kind: 'other' },
          {
            key: 'broken.dcm',
            version: '300-1',
            size: 300,
            kind: 'error',
            reason: 'corrupt_file: truncated',
          },
        ],
      }),
      s1 + 1,
    );
    expect(await catalog.counts()).toEqual({ studies: 2, series: 2, instances: 21, errors: 1, objects: 23 });
    const versions = await catalog.versions([wsi.key, ct[3].key, 'notes.txt', 'missing.dcm']);
    expect(Object.fromEntries(versions)).toEqual({
      [wsi.key]: wsi.version,
      [ct[3].key]: ct[3].version,
      'notes.txt': '5-1',
    });
    const problems = await catalog.problems();
    expect(problems).toEqual([
      { key: 'broken.dcm', kind: 'error', reason: 'corrupt_file: truncated', indexedAt: expect.any(String) },
    ]);
    // The stored instance is the record: served by SOP Instance UID without touching storage.
    const stored = await catalog.instance(wsi.sopUid);
    expect(stored).toMatchObject({
      key: wsi.key,
      studyUid: wsi.studyUid,
      transferSyntax: wsi.transferSyntax,
    });
    expect(stored?.json['00080018']).toEqual({ vr: 'UI', Value: [wsi.sopUid] });
  });

  it('looks up versions of more keys than one statement takes (chunks of 500)', async () => {
    const catalog = await fresh();
    const others = Array.from({ length: 640 }, (_, i) => ({
      key: `bulk/${String(i).padStart(5, '0')}.bin`,
      version: `${i}-v`,
      size: i,
      kind: 'other' as const,
    }));
    await catalog.applyBatch(batch({ others }), await catalog.beginScan());
    const versions = await catalog.versions(others.map((o) => o.key));
    expect(versions.size).toBe(640);
    expect(versions.get('bulk/00639.bin')).toBe('639-v');
  });

  it('removes objects a complete scan did not see, with their empty series and studies', async () => {
    const catalog = await fresh();
    const scan1 = await catalog.beginScan();
    await catalog.applyBatch(
      batch({
        instances: [wsi, ...ct],
        others: [{ key: 'other/readme.txt', version: '1', size: 1, kind: 'other' }],
      }),
      scan1,
    );
    const scan2 = await catalog.beginScan();
    // Scan 2 saw the WSI and half of the CT series, nothing else.
    await catalog.applyBatch(batch({ seen: [wsi.key, ...ct.slice(0, 10).map((r) => r.key)] }), scan2);
    expect(await catalog.removeUnseen(scan2)).toBe(11);
    expect(await catalog.counts()).toMatchObject({ studies: 2, series: 2, instances: 11, objects: 11 });
    // Scan 3 under the prefix `ct/` sees nothing: only the CT instances go, and their study.
    const scan3 = await catalog.beginScan();
    expect(await catalog.removeUnseen(scan3, 'ct/')).toBe(10);
    expect(await catalog.counts()).toMatchObject({ studies: 1, series: 1, instances: 1, objects: 1 });
    expect(await catalog.exists(ct[0].studyUid)).toBe(false);
    expect(await catalog.exists(wsi.studyUid, wsi.seriesUid)).toBe(true);
  });

  it('a changed object replaces its record; one that stopped being DICOM leaves the catalog', async () => {
    const catalog = await fresh();
    const a = vary(wsi, { key: 'a.dcm', sopUid: `${U}.1.1.1`, seriesUid: `${U}.1.1`, studyUid: `${U}.1` });
    const b = vary(wsi, { key: 'b.dcm', sopUid: `${U}.1.1.2`, seriesUid: `${U}.1.1`, studyUid: `${U}.1` });
    await catalog.applyBatch(batch({ instances: [a, b] }), await catalog.beginScan());
    // a.dcm is overwritten with an instance of another study: the old study keeps b only.
    const moved = vary(a, {
      key: 'a.dcm',
      version: 'v2',
      sopUid: `${U}.2.1.1`,
      seriesUid: `${U}.2.1`,
      studyUid: `${U}.2`,
    });
    await catalog.applyBatch(batch({ instances: [moved] }), await catalog.currentScan());
    expect(await catalog.instance(`${U}.1.1.1`)).toBeUndefined();
    expect((await catalog.instance(`${U}.2.1.1`))?.version).toBe('v2');
    expect(Object.fromEntries(await catalog.seriesCounts([`${U}.1.1`, `${U}.2.1`]))).toEqual({
      [`${U}.1.1`]: 1,
      [`${U}.2.1`]: 1,
    });
    // b.dcm is overwritten with garbage: its series and study disappear.
    await catalog.applyBatch(
      batch({ others: [{ key: 'b.dcm', version: 'v3', size: 9, kind: 'error', reason: 'corrupt_file: x' }] }),
      await catalog.currentScan(),
    );
    expect(await catalog.exists(`${U}.1`)).toBe(false);
    expect(await catalog.counts()).toEqual({ studies: 1, series: 1, instances: 1, errors: 1, objects: 2 });
    // removeKeys (a deleted or replaced object) also takes the empty study with it.
    await catalog.removeKeys(['a.dcm', 'b.dcm']);
    expect(await catalog.counts()).toEqual({ studies: 0, series: 0, instances: 0, errors: 0, objects: 0 });
    await catalog.removeKeys([]);
  });

  it.each([
    ['the served key first', ['a/dup.dcm', 'b/dup.dcm']],
    ['the served key last', ['b/dup.dcm', 'a/dup.dcm']],
  ])('duplicate SOP Instance UIDs, %s: one served, both reported, the twin promoted', async (_name, keys) => {
    const catalog = await fresh();
    const scan = await catalog.beginScan();
    for (const key of keys) await catalog.applyBatch(batch({ instances: [vary(wsi, { key })] }), scan);
    expect((await catalog.instance(wsi.sopUid))?.key).toBe('a/dup.dcm');
    expect(await instanceKeys(catalog)).toEqual(['a/dup.dcm']);
    expect(await catalog.counts()).toMatchObject({ instances: 1, objects: 2 });
    expect(Object.fromEntries(await catalog.seriesCounts([wsi.seriesUid]))).toEqual({ [wsi.seriesUid]: 1 });
    const problems = await catalog.problems();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ key: 'b/dup.dcm', kind: 'duplicate' });
    expect(problems[0].reason).toContain(wsi.sopUid);
    expect(problems[0].reason).toContain('a/dup.dcm');
    // Re-recording the served object (a changed version) keeps it served.
    await catalog.applyBatch(batch({ instances: [vary(wsi, { key: 'a/dup.dcm', version: 'v2' })] }), scan);
    expect(await catalog.instance(wsi.sopUid)).toMatchObject({ key: 'a/dup.dcm', version: 'v2' });
    await catalog.removeKeys(['a/dup.dcm']);
    expect((await catalog.instance(wsi.sopUid))?.key).toBe('b/dup.dcm');
    expect(await catalog.problems()).toEqual([]);
    expect(await catalog.counts()).toMatchObject({ studies: 1, series: 1, instances: 1 });
  });

  it('a duplicate removed by a scan promotes its twin as well', async () => {
    const catalog = await fresh();
    const scan1 = await catalog.beginScan();
    await catalog.applyBatch(
      batch({ instances: [vary(wsi, { key: 'x/1.dcm' }), vary(wsi, { key: 'y/1.dcm' })] }),
      scan1,
    );
    const scan2 = await catalog.beginScan();
    await catalog.applyBatch(batch({ seen: ['y/1.dcm'] }), scan2);
    expect(await catalog.removeUnseen(scan2)).toBe(1);
    expect((await catalog.instance(wsi.sopUid))?.key).toBe('y/1.dcm');
  });

  it('a slower, older scan (another replica) never makes an object look unseen to a newer one', async () => {
    const catalog = await fresh();
    const older = await catalog.beginScan();
    await catalog.applyBatch(batch({ instances: [vary(wsi, { key: 'k/1.dcm' })] }), older);
    const newer = await catalog.beginScan();
    await catalog.applyBatch(batch({ seen: ['k/1.dcm'] }), newer);
    // The older scan reaches the same object after the newer one did.
    await catalog.applyBatch(batch({ seen: ['k/1.dcm'] }), older);
    await catalog.applyBatch(batch({ instances: [vary(wsi, { key: 'k/1.dcm' })] }), older);
    expect(await catalog.removeUnseen(newer)).toBe(0);
    expect(await catalog.counts()).toMatchObject({ objects: 1, instances: 1 });
  });

  it('a series (and study) holding only duplicates served elsewhere is not listed', async () => {
    const catalog = await fresh();
    const twin = vary(wsi, { key: 'z/twin.dcm', seriesUid: `${U}.9.1`, studyUid: `${U}.9` });
    await catalog.applyBatch(
      batch({ instances: [vary(wsi, { key: 'a/orig.dcm' }), twin] }),
      await catalog.beginScan(),
    );
    const page = { fuzzy: false, matches: [], limit: 100, offset: 0 };
    const series = await catalog.search({ ...page, level: 'series' });
    expect(series.rows.map((r) => r.seriesUid)).toEqual([wsi.seriesUid]);
    const studies = await catalog.search({ ...page, level: 'study' });
    expect(studies.rows.map((r) => r.studyUid)).toEqual([wsi.studyUid]);
    // Once the original goes, the twin is served and its series and study are listed.
    await catalog.removeKeys(['a/orig.dcm']);
    expect((await catalog.search({ ...page, level: 'series' })).rows.map((r) => r.seriesUid)).toEqual([
      `${U}.9.1`,
    ]);
  });

  it('studyCounts and seriesCounts count served instances, series and modalities', async () => {
    const catalog = await fresh();
    const study = `${U}.7`;
    const records = [
      vary(wsi, { key: 's/1', sopUid: `${U}.7.1.1`, seriesUid: `${U}.7.1`, studyUid: study, modality: 'CT' }),
      vary(wsi, { key: 's/2', sopUid: `${U}.7.1.2`, seriesUid: `${U}.7.1`, studyUid: study, modality: 'CT' }),
      vary(wsi, { key: 's/3', sopUid: `${U}.7.2.1`, seriesUid: `${U}.7.2`, studyUid: study, modality: 'SR' }),
      vary(wsi, { key: 's/4', sopUid: `${U}.7.3.1`, seriesUid: `${U}.7.3`, studyUid: study, modality: 'CT' }),
      // A duplicate: stored, not counted.
      vary(wsi, { key: 's/5', sopUid: `${U}.7.1.1`, seriesUid: `${U}.7.1`, studyUid: study, modality: 'CT' }),
    ];
    await catalog.applyBatch(batch({ instances: [...records, ...ct] }), await catalog.beginScan());
    const studies = await catalog.studyCounts([study, ct[0].studyUid, '1.2.3.404']);
    expect(Object.fromEntries(studies)).toEqual({
      [study]: { series: 3, instances: 4, modalities: ['CT', 'SR'] },
      [ct[0].studyUid]: { series: 1, instances: 20, modalities: ['CT'] },
      '1.2.3.404': { series: 0, instances: 0, modalities: [] },
    });
    const series = await catalog.seriesCounts([`${U}.7.1`, `${U}.7.2`, ct[0].seriesUid, '1.2.3.404']);
    expect(Object.fromEntries(series)).toEqual({
      [`${U}.7.1`]: 2,
      [`${U}.7.2`]: 1,
      [ct[0].seriesUid]: 20,
      '1.2.3.404': 0,
    });
    expect(await catalog.studyCounts([])).toEqual(new Map());
  });

  it('objects an older indexer skipped read as changed once per indexer version', async () => {
    const catalog = await fresh();
    await catalog.applyBatch(
      batch({
        instances: [wsi],
        others: [
          { key: 'n.txt', version: '1-1', size: 1, kind: 'other' },
          { key: 'e.dcm', version: '2-1', size: 2, kind: 'error', reason: 'x' },
        ],
      }),
      await catalog.beginScan(),
    );
    await catalog.invalidateSkipped('1');
    expect(Object.fromEntries(await catalog.versions(['n.txt', 'e.dcm', wsi.key]))).toEqual({
      'n.txt': '',
      'e.dcm': '',
      [wsi.key]: wsi.version,
    });
    await catalog.applyBatch(
      batch({ others: [{ key: 'n.txt', version: '1-1', size: 1, kind: 'other' }] }),
      1,
    );
    await catalog.invalidateSkipped('1');
    expect((await catalog.versions(['n.txt'])).get('n.txt')).toBe('1-1');
  });

  // Replicas share one PostgreSQL catalog and may all start at once on a new database. (SQLite is
  // one process's embedded file: several connections in one process would wait on each other's
  // locks synchronously, so this is a PostgreSQL property.)
  if (dialect === 'postgres') {
    it('replicas migrating one new database at once all succeed, the schema applied once', async () => {
      const location = await backend.fresh();
      const catalogs = await Promise.all([1, 2, 3, 4].map(() => Catalog.open(location)));
      open.push(...catalogs);
      const versions = await catalogs[0].sql.all<{ version: number }>(
        'SELECT version FROM catalog_migrations',
      );
      expect(versions.map((v) => Number(v.version))).toEqual([SCHEMA_VERSION]);
      // What one replica records, the others see.
      await catalogs[1].applyBatch(
        batch({ others: [{ key: 'k', version: 'v', size: 1, kind: 'other' }] }),
        await catalogs[1].beginScan(),
      );
      expect((await catalogs[3].versions(['k'])).get('k')).toBe('v');
    });
  }
});
