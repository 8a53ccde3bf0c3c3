// QIDO matching (src/catalog/query.ts) on both catalog databases, against a catalog whose content
// is known: five studies built from the real fixtures (the WSI boxes, the CT series without UIDs)
// and synthetic variations of them. Every kind of match at every level — UID lists, DA/TM ranges
// with open ends, case-sensitive `*`/`?`, fuzzy person names, numbers, attributes only in the
// stored JSON, ModalitiesInStudy, study scope, paging — and hostile values (SQL metacharacters,
// 10 000-character values, unknown tags) that get BadRequest or harmless empty results.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import type { Level } from '../../src/catalog/levels.js';
import type { CatalogQuery, Match } from '../../src/catalog/query.js';
import type { InstanceRecord } from '../../src/catalog/record.js';
import { VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE } from '../../src/dicom/tags.js';
import { BadRequest } from '../../src/errors.js';
import { DIALECTS, startBackend, type CatalogBackend } from '../support/catalog-backends.js';
import { ctFixtureRecords, fixtureRecord, vary } from '../support/catalog-records.js';

const U = '1.2.826.0.1.3680043.10.543';
const S1 = `${U}.1`; // Doe^John, 20240115 093000: CT series (3 instances) + SR series (1)
const S2 = `${U}.2`; // DOE^JANE, 20240220 141500: MR series (2), BodyPartExamined HEAD
let S3 = ''; // the WSI fixture's own UIDs: Smith^Anna^Maria, 20231231 235959.5, SM (2)
let S5 = ''; // the CT fixture (derived UIDs): 20221208 000000, CT (20)
const S4 = `${U}.4`; // O'Brien^Pat, no date (the fixture's time 095915), OT (1), hostile patient ID
const HOSTILE_ID = "X'; DROP TABLE studies; --";

const M = (tag: string, vr: string, value: string): Match => ({ tag, vr, value });

async function dataset(): Promise<InstanceRecord[]> {
  const boxes0 = await fixtureRecord('wsi/openslide/boxes_0.dcm', 'wsi/boxes_0.dcm');
  const boxes1 = await fixtureRecord('wsi/openslide/boxes_1.dcm', 'wsi/boxes_1.dcm');
  const ct = await ctFixtureRecords('ct');
  S3 = boxes0.studyUid;
  S5 = ct[0].studyUid;
  const john = {
    studyUid: S1,
    patientName: 'Doe^John',
    patientId: 'P001',
    studyDate: '20240115',
    studyTime: '093000',
    accessionNumber: 'ACC-1',
    studyDescription: 'CT Chest',
    referringPhysicianName: 'House^Gregory',
  };
  const s1ct = [1, 2, 3].map((n) =>
    vary(boxes0, {
      ...john,
      key: `p1/ct/${n}.dcm`,
      sopUid: `${U}.1.1.${n}`,
      seriesUid: `${U}.1.1`,
      modality: 'CT',
      seriesNumber: 1,
      instanceNumber: n,
      extra: n === 1 ? { '00081070': { vr: 'PN', Value: [{ Alphabetic: 'Tech^Tom' }] } } : {},
    }),
  );
  const s1sr = vary(boxes0, {
    ...john,
    key: 'p1/sr/1.dcm',
    sopUid: `${U}.1.2.1`,
    seriesUid: `${U}.1.2`,
    modality: 'SR',
    seriesNumber: 2,
    instanceNumber: 1,
  });
  const s2 = [1, 2].map((n) =>
    vary(boxes0, {
      key: `p2/${n}.dcm`,
      studyUid: S2,
      seriesUid: `${U}.2.1`,
      sopUid: `${U}.2.1.${n}`,
      patientName: 'DOE^JANE',
      patientId: 'P002',
      studyDate: '20240220',
      studyTime: '141500',
      accessionNumber: 'acc-2',
      modality: 'MR',
      seriesNumber: 1,
      instanceNumber: n,
      extra: { '00180015': { vr: 'CS', Value: ['HEAD'] } },
    }),
  );
  const s3 = [boxes0, boxes1].map((r) =>
    vary(r, {
      key: r.key,
      patientName: 'Smith^Anna^Maria',
      patientId: 'P003',
      studyDate: '20231231',
      studyTime: '235959.5',
    }),
  );
  const s4 = vary(boxes0, {
    key: 'p4/x.dcm',
    studyUid: S4,
    seriesUid: `${U}.4.1`,
    sopUid: `${U}.4.1.1`,
    patientName: "O'Brien^Pat",
    patientId: HOSTILE_ID,
    studyDate: null,
    modality: 'OT',
    seriesNumber: 7,
  });
  return [...s1ct, s1sr, ...s2, ...s3, s4, ...ct];
}

describe.each(DIALECTS)('search on %s', (dialect) => {
  let backend: CatalogBackend;
  let catalog: Catalog;
  let records: InstanceRecord[];

  beforeAll(async () => {
    backend = await startBackend(dialect);
    catalog = await Catalog.open(await backend.fresh());
    records = await dataset();
    await catalog.applyBatch({ seen: [], instances: records, others: [] }, await catalog.beginScan());
  });
  afterAll(async () => {
    await catalog?.close();
    await backend?.stop();
  });

  const query = (level: Level, matches: Match[], more: Partial<CatalogQuery> = {}) =>
    catalog.search({ level, matches, fuzzy: false, limit: 1000, offset: 0, ...more });
  /** The matching studies, as a sorted list. */
  const studies = async (matches: Match[], more: Partial<CatalogQuery> = {}) =>
    (await query('study', matches, more)).rows.map((r) => r.studyUid).sort();
  const series = async (matches: Match[], more: Partial<CatalogQuery> = {}) =>
    (await query('series', matches, more)).rows.map((r) => r.seriesUid!).sort();
  const instances = async (matches: Match[], more: Partial<CatalogQuery> = {}) =>
    (await query('instance', matches, more)).rows.map((r) => r.key!);
  const sorted = (...uids: string[]) => [...uids].sort();

  describe('study level', () => {
    it('no match: every study, newest first, study attributes in the rows', async () => {
      const { rows, more } = await query('study', []);
      expect(rows.map((r) => r.studyUid)).toEqual([S2, S1, S3, S5, S4]);
      expect(more).toBe(false);
      expect(rows[1].study['00100010']).toEqual({ vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }] });
      expect(rows[1].study['00080060']).toBeUndefined(); // a series attribute
    });

    it.each([
      ['20240101-', () => [S1, S2]],
      ['-20231231', () => [S3, S5]],
      ['20230101-20240131', () => [S3, S1]],
      ['20240115', () => [S1]],
      ['20240115-20240115', () => [S1]],
      ['19000101-19991231', () => []],
      ['', () => [S1, S2, S3, S4, S5]],
    ])('StudyDate %s', async (value, expected) => {
      expect(await studies([M('00080020', 'DA', value)])).toEqual(sorted(...expected()));
    });

    it.each([
      ['0900-1200', () => [S1, S4]],
      ['1400-', () => [S2, S3]],
      ['-0000', () => [S5]],
      ['-093000', () => [S1, S5]],
      ['2359-', () => [S3]],
      ['235959.5-235959.5', () => [S3]],
    ])('StudyTime %s (an upper bound includes every time it starts)', async (value, expected) => {
      expect(await studies([M('00080030', 'TM', value)])).toEqual(sorted(...expected()));
    });

    it.each([['2024-01-01-02'], ['2024'], ['-'], ['20240101-2024'], ['yesterday-']])(
      'a bad date or range (%s) is a BadRequest',
      async (value) => {
        await expect(studies([M('00080020', 'DA', value)])).rejects.toBeInstanceOf(BadRequest);
      },
    );

    it('UID lists', async () => {
      expect(await studies([M('0020000D', 'UI', `${S1}\\${S4}\\1.2.3.404`)])).toEqual(sorted(S1, S4));
      expect(await studies([M('0020000D', 'UI', S2)])).toEqual([S2]);
      await expect(studies([M('0020000D', 'UI', `${S1}\\abc`)])).rejects.toBeInstanceOf(BadRequest);
    });

    it.each([
      ['Doe*', () => [S1]],
      ['DOE*', () => [S2]],
      ['doe*', () => []],
      ['?oe^John', () => [S1]],
      ['*^Anna*', () => [S3]],
      ['Doe^John', () => [S1]],
      ['Doe', () => []],
      ['*', () => [S1, S2, S3, S4, S5]],
      ["O'Brien*", () => [S4]],
    ])('PatientName %s: wildcards, case-sensitive', async (value, expected) => {
      expect(await studies([M('00100010', 'PN', value)])).toEqual(sorted(...expected()));
    });

    it.each([
      ['doe', () => [S1, S2]],
      ['JOHN', () => [S1]],
      ['maria', () => [S3]],
      ['doe^ja', () => [S2]],
      ['Anna Maria', () => [S3]],
      ['o*', () => [S4]],
      ['oe', () => []],
    ])(
      'PatientName %s with fuzzymatching: case- and caret-insensitive, any component',
      async (value, expected) => {
        expect(await studies([M('00100010', 'PN', value)], { fuzzy: true })).toEqual(sorted(...expected()));
      },
    );

    it('fuzzy matching applies to every person name, not only the patient', async () => {
      expect(await studies([M('00080090', 'PN', 'gregory')], { fuzzy: true })).toEqual([S1]);
      expect(await studies([M('00080090', 'PN', 'house^g')], { fuzzy: true })).toEqual([S1]);
      // OperatorsName exists only in the stored JSON of one instance of S1.
      expect(await studies([M('00081070', 'PN', 'tom')], { fuzzy: true })).toEqual([S1]);
      expect(await studies([M('00081070', 'PN', 'tom')])).toEqual([]);
      expect(await studies([M('00081070', 'PN', 'Tech^Tom')])).toEqual([S1]);
    });

    it('text attributes: exact, `?`, `*`; SQL LIKE / GLOB syntax is literal', async () => {
      expect(await studies([M('00100020', 'LO', 'P00?')])).toEqual(sorted(S1, S2, S3));
      expect(await studies([M('00100020', 'LO', 'P00*')])).toEqual(sorted(S1, S2, S3));
      expect(await studies([M('00080050', 'SH', 'acc*')])).toEqual([S2]);
      expect(await studies([M('00080050', 'SH', 'ACC-1')])).toEqual([S1]);
      for (const literal of ['[P]00*', 'P%', '%', 'P_01', '_*', 'P00[1-3]', '%*', '\\*']) {
        expect(await studies([M('00100020', 'LO', literal)]), literal).toEqual([]);
      }
    });

    it('ModalitiesInStudy: any series of the study, a list is an OR', async () => {
      expect(await studies([M('00080061', 'CS', 'CT')])).toEqual(sorted(S1, S5));
      expect(await studies([M('00080061', 'CS', 'MR\\SM')])).toEqual(sorted(S2, S3));
      expect(await studies([M('00080061', 'CS', 'SR')])).toEqual([S1]);
      expect(await studies([M('00080061', 'CS', 'XA')])).toEqual([]);
    });

    it('series and instance attributes at the study level: some series / instance matches', async () => {
      expect(await studies([M('00080060', 'CS', 'SM')])).toEqual([S3]);
      expect(await studies([M('00200011', 'IS', '7')])).toEqual([S4]);
      expect(await studies([M('00080018', 'UI', `${U}.2.1.2`)])).toEqual([S2]);
      expect(await studies([M('00180015', 'CS', 'HEAD')])).toEqual([S2]);
      expect(await studies([M('00180015', 'CS', 'HE*')])).toEqual([S2]);
      expect(await studies([M('00180015', 'CS', 'he*')])).toEqual([]);
      expect(await studies([M('00080016', 'UI', VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE)])).toEqual(
        sorted(S1, S2, S3, S4),
      );
    });

    it('several matches are an AND', async () => {
      expect(
        await studies([
          M('00100010', 'PN', 'D*'),
          M('00080020', 'DA', '20240201-'),
          M('00080061', 'CS', 'MR'),
        ]),
      ).toEqual([S2]);
      expect(await studies([M('00100010', 'PN', 'Doe*'), M('00080061', 'CS', 'MR')])).toEqual([]);
    });

    it('study scope (path parameter, token) restricts every query', async () => {
      expect(await studies([], { studyUids: [S1, S2] })).toEqual(sorted(S1, S2));
      expect(await studies([M('00100010', 'PN', 'Smith*')], { studyUids: [S1, S2] })).toEqual([]);
      expect(await studies([], { studyUids: [] })).toEqual([]);
      expect(await series([], { studyUids: [S1] })).toEqual([`${U}.1.1`, `${U}.1.2`]);
    });

    it('limit and offset page through the order; `more` says whether rows remain', async () => {
      const page = async (offset: number, limit: number) => {
        const { rows, more } = await query('study', [], { offset, limit });
        return { uids: rows.map((r) => r.studyUid), more };
      };
      expect(await page(0, 2)).toEqual({ uids: [S2, S1], more: true });
      expect(await page(2, 2)).toEqual({ uids: [S3, S5], more: true });
      expect(await page(4, 2)).toEqual({ uids: [S4], more: false });
      expect(await page(3, 2)).toEqual({ uids: [S5, S4], more: false });
      expect(await page(10, 2)).toEqual({ uids: [], more: false });
    });
  });

  describe('series level', () => {
    it('every series, study and series attributes in the rows', async () => {
      const { rows } = await query('series', [], { studyUids: [S1] });
      expect(rows.map((r) => r.seriesUid)).toEqual([`${U}.1.1`, `${U}.1.2`]);
      expect(rows[0].series?.['00080060']).toEqual({ vr: 'CS', Value: ['CT'] });
      expect(rows[0].study['00100020']).toEqual({ vr: 'LO', Value: ['P001'] });
      expect(await series([])).toHaveLength(6);
    });

    it('matches on series columns, study columns, numbers and the stored JSON', async () => {
      const ctSeries = records.find((r) => r.key.startsWith('ct/'))!.seriesUid;
      expect(await series([M('00080060', 'CS', 'CT')])).toEqual(sorted(`${U}.1.1`, ctSeries));
      expect(await series([M('0008103E', 'LO', 'CT Body 3.0')])).toEqual([ctSeries]);
      expect(await series([M('0008103E', 'LO', 'CT*')])).toEqual([ctSeries]);
      expect(await series([M('00100010', 'PN', 'Doe*')])).toEqual([`${U}.1.1`, `${U}.1.2`]);
      expect(await series([M('00200011', 'IS', '2')])).toEqual([`${U}.1.2`]);
      expect(await series([M('00200011', 'IS', '2.0')])).toEqual([`${U}.1.2`]);
      expect(await series([M('00180015', 'CS', 'HEAD')])).toEqual([`${U}.2.1`]);
      expect(await series([M('0020000E', 'UI', `${U}.4.1\\${U}.2.1`)])).toEqual([`${U}.2.1`, `${U}.4.1`]);
      expect(await series([M('00080061', 'CS', 'SR')])).toEqual([`${U}.1.1`, `${U}.1.2`]);
      expect(await series([M('00081070', 'PN', 'Tech^Tom')])).toEqual([`${U}.1.1`]);
    });
  });

  describe('instance level', () => {
    it('one series in instance number order; numbers matched as numbers', async () => {
      expect(await instances([], { studyUids: [S1], seriesUid: `${U}.1.1` })).toEqual([
        'p1/ct/1.dcm',
        'p1/ct/2.dcm',
        'p1/ct/3.dcm',
      ]);
      expect(await instances([M('00200013', 'IS', '2')], { studyUids: [S1] })).toEqual(['p1/ct/2.dcm']);
      const ct = records.filter((r) => r.key.startsWith('ct/'));
      const rows = String(ct[0].rows);
      expect(await instances([M('00280010', 'US', rows)], { studyUids: [S5] })).toHaveLength(
        ct.filter((r) => String(r.rows) === rows).length,
      );
      expect(await instances([M('00280010', 'US', '7')])).toEqual([]);
      await expect(instances([M('00200013', 'IS', 'abc')])).rejects.toBeInstanceOf(BadRequest);
      await expect(instances([M('00200013', 'IS', '1e999')])).rejects.toBeInstanceOf(BadRequest);
    });

    it('the instance JSON, the SOP class, attributes of the study and series', async () => {
      const { rows } = await query('instance', [M('00081070', 'PN', 'Tech*')]);
      expect(rows.map((r) => r.key)).toEqual(['p1/ct/1.dcm']);
      expect(rows[0].instance?.['00080018']).toEqual({ vr: 'UI', Value: [`${U}.1.1.1`] });
      expect(rows[0].series?.['0020000E']).toEqual({ vr: 'UI', Value: [`${U}.1.1`] });
      expect(await instances([M('00180015', 'CS', 'HEAD')])).toEqual(['p2/1.dcm', 'p2/2.dcm']);
      expect((await instances([M('00080016', 'UI', VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE)])).length).toBe(
        9,
      );
      expect(await instances([M('00100020', 'LO', 'P003')])).toEqual(['wsi/boxes_0.dcm', 'wsi/boxes_1.dcm']);
      expect(await instances([M('00080060', 'CS', 'OT')])).toEqual(['p4/x.dcm']);
    });

    it('pages through the 20 CT instances', async () => {
      const all = await instances([], { studyUids: [S5] });
      expect(all).toHaveLength(20);
      const page = await query('instance', [], { studyUids: [S5], offset: 10, limit: 5 });
      expect(page.rows.map((r) => r.key)).toEqual(all.slice(10, 15));
      expect(page.more).toBe(true);
      const last = await query('instance', [], { studyUids: [S5], offset: 15, limit: 5 });
      expect(last.rows.map((r) => r.key)).toEqual(all.slice(15));
      expect(last.more).toBe(false);
    });
  });

  describe('hostile values', () => {
    const long = 'A'.repeat(10_000);

    it.each([
      ['an SQL injection in a name', M('00100010', 'PN', "'; DROP TABLE studies; --")],
      ['an SQL injection with wildcards', M('00100010', 'PN', "*'; DROP TABLE studies; --*")],
      ['a quote in a JSON-matched tag', M('00181030', 'LO', `x' OR '1'='1`)],
      ['a 10 000-character name', M('00100010', 'PN', long)],
      ['a 10 000-character pattern', M('00100010', 'PN', `${long}*?*`)],
      ['a 10 000-character JSON match', M('00181030', 'LO', long)],
      ['an unknown tag', M('00991234', 'LO', 'x')],
      ['an unknown tag with a wildcard', M('00991234', 'LO', '*x*')],
      ['an unknown number', M('00991235', 'UL', '3')],
    ])('%s: an empty result', async (_name, match) => {
      expect((await query('study', [match])).rows).toEqual([]);
      expect((await query('study', [match], { fuzzy: true })).rows).toEqual([]);
      expect((await query('instance', [match])).rows).toEqual([]);
    });

    it('a stored hostile value matches itself, literally', async () => {
      expect(await studies([M('00100020', 'LO', HOSTILE_ID)])).toEqual([S4]);
      expect(await studies([M('00100020', 'LO', "X'; DROP*")])).toEqual([S4]);
    });

    it.each([
      ['a 10 000-character UID', M('0020000D', 'UI', '1'.repeat(10_000))],
      ['an injected UID', M('0020000D', 'UI', "1.2' OR '1'='1")],
      ['a 10 000-character date', M('00080020', 'DA', '2'.repeat(10_000))],
      ['a 10 000-character date range', M('00080020', 'DA', `${'2'.repeat(5000)}-${'3'.repeat(5000)}`)],
      ['a 10 000-character number', M('00200011', 'IS', '9'.repeat(10_000))],
      ['a tag that is not a tag', M(`0010"0010`, 'LO', 'x')],
      ['an injected tag', M(`00100010') OR 1=1 --`, 'LO', 'x')],
    ])('%s: BadRequest', async (_name, match) => {
      for (const level of ['study', 'series', 'instance'] as const) {
        await expect(query(level, [match])).rejects.toBeInstanceOf(BadRequest);
      }
    });

    it('the tables survive all of it', async () => {
      expect(await catalog.counts()).toEqual({
        studies: 5,
        series: 6,
        instances: records.length,
        errors: 0,
        objects: records.length,
      });
    });
  });
});
