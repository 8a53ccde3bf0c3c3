// The indexer over a real local directory and a real S3 server (s3rver): the first scan reads
// each DICOM header once; a scan with nothing changed reads no object and costs only the listing;
// changed objects are read again, deleted ones leave the catalog; an interrupted scan keeps what
// it committed and the next one completes it; the CT fixture without UIDs lands in one series
// with deterministic derived UIDs; a 5000-object listing is handled a page at a time, and an
// interruption after its first page keeps that page.
// Storage requests are counted with the ReadStats observer the server uses.

import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Catalog, type IndexBatch } from '../../src/catalog/catalog.js';
import { Indexer } from '../../src/catalog/indexer.js';
import { ReadStats } from '../../src/io/stats.js';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { LocalStorage } from '../../src/storage/local.js';
import { S3Storage } from '../../src/storage/s3.js';
import type { ListOptions, ListPage, Storage, StorageRequestEvent } from '../../src/storage/types.js';
import { fixture } from '../support/fixtures.js';
import { S3RVER_CREDENTIALS, startS3Server, type TestS3Server } from '../support/s3-server.js';

const CT_DIR = fixture('volumes/ct-dicom-j2k');
const BUCKET = 'indexer';

/** The objects every test starts from: the CT series, the two WSI instances, a text file. */
async function fixtureObjects(): Promise<Map<string, Uint8Array>> {
  const objects = new Map<string, Uint8Array>();
  for (const name of (await readdir(CT_DIR)).sort()) {
    objects.set(`ct/${name}`, new Uint8Array(await readFile(path.join(CT_DIR, name))));
  }
  for (const name of ['boxes_0.dcm', 'boxes_1.dcm']) {
    objects.set(`wsi/${name}`, new Uint8Array(await readFile(fixture(`wsi/openslide/${name}`))));
  }
  objects.set('notes.txt', new TextEncoder().encode('not an image\n'));
  return objects;
}

/** A place to put objects and a Storage reading them, counted. */
interface Place {
  put(key: string, bytes: Uint8Array): Promise<void>;
  remove(key: string): Promise<void>;
  storage(stats: ReadStats): Promise<Storage>;
}

describe.each(['local', 's3'] as const)('indexer on %s storage', (kind) => {
  let s3: TestS3Server | undefined;
  let tmp: string;
  let objects: Map<string, Uint8Array>;
  let run = 0;
  let place: Place;
  let catalog: Catalog;
  let stats: ReadStats;
  let storage: Storage;
  /** Sees every storage request after the statistics counted it. */
  let onRequest: ((event: StorageRequestEvent) => void) | undefined;

  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'medstream-indexer-'));
    objects = await fixtureObjects();
    if (kind === 's3') s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  beforeEach(async (context) => {
    run++;
    if (kind === 'local') {
      const root = path.join(tmp, `root-${run}`);
      place = {
        async put(key, bytes) {
          await mkdir(path.dirname(path.join(root, key)), { recursive: true });
          await writeFile(path.join(root, key), bytes);
        },
        remove: (key) => rm(path.join(root, key)),
        storage: (observer) => LocalStorage.create(root, { observer }),
      };
      await mkdir(root, { recursive: true });
    } else {
      const bucket = `${BUCKET}-${run}`;
      await s3!.createBucket(bucket);
      place = {
        put: (key, bytes) => s3!.upload(bucket, key, bytes),
        async remove(key) {
          await s3!.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
        },
        storage: async (observer) =>
          new S3Storage({
            bucket,
            endpoint: s3!.endpoint,
            forcePathStyle: true,
            region: 'us-east-1',
            credentials: S3RVER_CREDENTIALS,
            observer,
          }),
      };
    }
    await Promise.all([...objects].map(([key, bytes]) => place.put(key, bytes)));
    onRequest = undefined;
    stats = new ReadStats({}, { onRequest: (event) => onRequest?.(event) });
    storage = await place.storage(stats);
    catalog = await Catalog.open(path.join(tmp, `catalog-${run}.sqlite`));
    context.onTestFinished(async () => {
      await catalog.close();
      await storage.close();
    });
  });

  /** Storage requests of one scan. */
  const counted = async (scan: () => Promise<unknown>) => {
    const before = stats.snapshot();
    const result = await scan();
    const after = stats.snapshot();
    return {
      result,
      reads: after.read.requests - before.read.requests,
      lists: after.list.requests - before.list.requests,
      stats: after.stat.requests - before.stat.requests,
    };
  };

  it('indexes everything once; a second scan reads nothing; changes and deletions follow', async () => {
    const indexer = new Indexer(storage, catalog);
    const first = await counted(() => indexer.scan());
    expect(first.result).toMatchObject({
      listed: 23,
      indexed: 22,
      unchanged: 0,
      other: 1,
      failed: 0,
      removed: 0,
      complete: true,
    });
    // One read per object: its first window says DICOM (whose header it holds: the parser stops at
    // the pixel data), NIfTI (a gzip NIfTI can be smaller than a DICOM preamble) or neither.
    expect(first.reads).toBe(23);
    expect(first.lists).toBe(1);
    expect(await catalog.counts()).toEqual({ studies: 2, series: 2, instances: 22, errors: 0, objects: 23 });

    const second = await counted(() => indexer.scan());
    expect(second.result).toMatchObject({
      listed: 23,
      indexed: 0,
      unchanged: 23,
      removed: 0,
      complete: true,
    });
    expect(second).toMatchObject({ reads: 0, lists: 1, stats: 0 });

    // boxes_1.dcm is replaced by a version with another SOP Instance UID (and 2 more bytes).
    const original = objects.get('wsi/boxes_1.dcm')!;
    const oldUid = '1.3.6.1.4.1.5962.99.1.1747645553.419656796.1689669825649.17.0';
    const newUid = '1.3.6.1.4.1.5962.99.1.1747645553.419656796.1689669825649.17.9';
    const text = Buffer.from(original).toString('latin1');
    expect(text.includes(oldUid)).toBe(true);
    const changed = Buffer.concat([Buffer.from(text.replaceAll(oldUid, newUid), 'latin1'), Buffer.alloc(2)]);
    await place.put('wsi/boxes_1.dcm', changed);
    const third = await counted(() => indexer.scan());
    expect(third.result).toMatchObject({ indexed: 1, unchanged: 22, removed: 0, complete: true });
    expect(third.reads).toBe(1);
    expect(await catalog.instance(oldUid)).toBeUndefined();
    expect(await catalog.instance(newUid)).toMatchObject({ key: 'wsi/boxes_1.dcm', size: changed.length });

    await place.remove('wsi/boxes_0.dcm');
    await place.remove('notes.txt');
    const fourth = await counted(() => indexer.scan());
    expect(fourth.result).toMatchObject({
      listed: 21,
      indexed: 0,
      unchanged: 21,
      removed: 2,
      complete: true,
    });
    expect(fourth.reads).toBe(0);
    expect(await catalog.counts()).toEqual({ studies: 2, series: 2, instances: 21, errors: 0, objects: 21 });
    const versions = await catalog.versions(['wsi/boxes_0.dcm', 'notes.txt', 'wsi/boxes_1.dcm']);
    expect([...versions.keys()]).toEqual(['wsi/boxes_1.dcm']);
  });

  it('the CT series without UIDs: one series, derived 2.25 UIDs, the same on re-index, warnings', async () => {
    await new Indexer(storage, catalog).scan({ prefix: 'ct/' });
    const rows = await catalog.sql.all<{
      key: string;
      sop_uid: string;
      series_uid: string;
      study_uid: string;
      warnings: string;
    }>(
      "SELECT key, sop_uid, series_uid, study_uid, warnings FROM instances WHERE key LIKE 'ct/%' ORDER BY key",
    );
    expect(rows).toHaveLength(20);
    expect(new Set(rows.map((r) => r.series_uid)).size).toBe(1);
    expect(new Set(rows.map((r) => r.study_uid)).size).toBe(1);
    const { series_uid: seriesUid, study_uid: studyUid } = rows[0];
    for (const uid of [seriesUid, studyUid]) {
      expect(uid).toMatch(/^2\.25\.[1-9][0-9]*$/);
      expect(uid.length).toBeLessThanOrEqual(64);
    }
    expect(seriesUid).not.toBe(studyUid);
    for (const row of rows) {
      // The file names carry the MediaStorageSOPInstanceUID, which becomes the SOP Instance UID.
      expect(row.sop_uid).toBe(path.basename(row.key).replace(/^CT\./, ''));
      const warnings = JSON.parse(row.warnings) as string[];
      expect(warnings).toEqual([
        'SOPInstanceUID empty or invalid: taken from MediaStorageSOPInstanceUID',
        'SOPClassUID empty: taken from MediaStorageSOPClassUID',
        "StudyInstanceUID empty or invalid: derived from the folder's parent and the study attributes",
        'SeriesInstanceUID empty or invalid: derived from the folder and the series attributes',
      ]);
    }
    const stored = await catalog.instance(rows[0].sop_uid);
    expect(stored?.json['0020000E']).toEqual({ vr: 'UI', Value: [seriesUid] });
    expect(stored?.json['0020000D']).toEqual({ vr: 'UI', Value: [studyUid] });

    // A fresh catalog of the same storage derives the same UIDs.
    const again = await Catalog.open(path.join(tmp, `catalog-${run}-again.sqlite`));
    try {
      await new Indexer(storage, again).scan({ prefix: 'ct/' });
      const second = await again.sql.all<{
        key: string;
        sop_uid: string;
        series_uid: string;
        study_uid: string;
      }>("SELECT key, sop_uid, series_uid, study_uid FROM instances WHERE key LIKE 'ct/%' ORDER BY key");
      expect(second).toEqual(
        rows.map(({ key, sop_uid, series_uid, study_uid }) => ({ key, sop_uid, series_uid, study_uid })),
      );
    } finally {
      await again.close();
    }
  });

  it('a scan interrupted in the middle of a page records nothing of it; the next scan completes', async () => {
    const indexer = new Indexer(storage, catalog);
    const abort = new AbortController();
    onRequest = (event) => {
      if (event.kind === 'read') abort.abort();
    };
    const interrupted = await indexer.scan({ signal: abort.signal, concurrency: 2 });
    expect(interrupted).toMatchObject({ complete: false, removed: 0 });
    expect(await catalog.counts()).toMatchObject({ instances: 0, objects: 0 });
    onRequest = undefined;
    const resumed = await counted(() => indexer.scan());
    expect(resumed.result).toMatchObject({ listed: 23, indexed: 22, other: 1, failed: 0, complete: true });
    expect(await catalog.problems()).toEqual([]);
  });
});

describe('indexer over a large listing', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'medstream-indexer-large-'));
    const ct = (await readdir(CT_DIR)).sort();
    for (let d = 0; d < 50; d++) {
      await mkdir(path.join(root, `d${String(d).padStart(2, '0')}`));
      await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          writeFile(path.join(root, `d${String(d).padStart(2, '0')}`, `${i}.txt`), `object ${d}/${i}`),
        ),
      );
    }
    // Five CT instances on the first listing page, five on the last.
    for (const [folder, names] of [
      ['a', ct.slice(0, 5)],
      ['zz', ct.slice(5, 10)],
    ] as const) {
      await mkdir(path.join(root, folder));
      for (const name of names) await copyFile(path.join(CT_DIR, name), path.join(root, folder, name));
    }
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('an interrupted scan keeps the committed batches; the next scan reads only the rest', async () => {
    const stats = new ReadStats();
    const storage = await LocalStorage.create(root, { observer: stats });
    const catalog = await Catalog.open(':memory:');
    try {
      const indexer = new Indexer(storage, catalog);
      const abort = new AbortController();
      // Stop once the first page is committed.
      const interrupted = await indexer.scan({ signal: abort.signal, onProgress: () => abort.abort() });
      expect(interrupted).toMatchObject({
        listed: 1000,
        indexed: 5,
        other: 995,
        complete: false,
        removed: 0,
      });
      expect(await catalog.counts()).toMatchObject({ series: 1, instances: 5, objects: 1000 });
      const readsBefore = stats.snapshot().read.requests;
      const resumed = await indexer.scan();
      expect(resumed).toMatchObject({
        listed: 5010,
        indexed: 5,
        unchanged: 1000,
        other: 4005,
        complete: true,
      });
      // Only the objects of the pages not committed were read, once each.
      expect(stats.snapshot().read.requests - readsBefore).toBe(4010);
      expect(await catalog.counts()).toMatchObject({ series: 2, instances: 10, objects: 5010 });
    } finally {
      await catalog.close();
      await storage.close();
    }
  });

  it('5010 objects: pages of at most 1000 keys, batches of at most 1000 objects, bounded reads in flight', async () => {
    const base = await LocalStorage.create(root);
    const pages: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    // The indexer sees the storage through this: it records page sizes and concurrent opens.
    const storage: Storage = {
      kind: base.kind,
      description: base.description,
      stat: (key, o) => base.stat(key, o),
      list: async (options?: ListOptions): Promise<ListPage> => {
        expect(options?.limit).toBeLessThanOrEqual(1000);
        const page = await base.list(options);
        pages.push(page.objects.length);
        return page;
      },
      open: async (key, o) => {
        const source = await base.open(key, o);
        return {
          key: source.key,
          size: source.size,
          identity: source.identity,
          read: async (offset, length, ro) => {
            maxInFlight = Math.max(maxInFlight, ++inFlight);
            try {
              return await source.read(offset, length, ro);
            } finally {
              inFlight--;
            }
          },
        };
      },
      close: () => base.close(),
    };
    const catalog = await Catalog.open(':memory:');
    const batches: number[] = [];
    const apply = catalog.applyBatch.bind(catalog);
    catalog.applyBatch = (batch: IndexBatch, scan: number) => {
      batches.push(batch.seen.length + batch.instances.length + batch.others.length);
      return apply(batch, scan);
    };
    try {
      const summary = await new Indexer(storage, catalog).scan({ concurrency: 3 });
      expect(summary).toMatchObject({ listed: 5010, indexed: 10, other: 5000, complete: true });
      expect(pages).toEqual([1000, 1000, 1000, 1000, 1000, 10]);
      expect(batches).toEqual([1000, 1000, 1000, 1000, 1000, 10]);
      expect(maxInFlight).toBeLessThanOrEqual(3);
      const again = await new Indexer(storage, catalog).scan({ concurrency: 3 });
      expect(again).toMatchObject({ listed: 5010, unchanged: 5010, indexed: 0, complete: true });
      expect(batches.slice(6)).toEqual([1000, 1000, 1000, 1000, 1000, 10]);
    } finally {
      await catalog.close();
      await storage.close();
    }
  });
});
