// Catalog instance records for the catalog tests: built from real fixture headers (the parser
// and src/catalog/record.ts, as the indexer does), and synthetic variations of them (a clone with
// other UIDs, names, dates, ...) so a test knows exactly which studies a query must return.

import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { instanceRecord, type InstanceRecord } from '../../src/catalog/record.js';
import { SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS, pick } from '../../src/catalog/levels.js';
import type { DicomJson, DicomJsonAttribute } from '../../src/dicom/json.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { BytesSource } from './file-source.js';
import { fixture } from './fixtures.js';

/** The record of one fixture file, under `key`. */
export async function fixtureRecord(
  relative: string,
  key = path.basename(relative),
): Promise<InstanceRecord> {
  const bytes = new Uint8Array(await readFile(fixture(relative)));
  const header = await parseDicomHeader(new BytesSource(bytes, key));
  return instanceRecord({ key, version: `${bytes.length}-1`, size: bytes.length }, header, 'test-storage');
}

/** The 20 files of the CT fixture (empty Study / Series / SOP UIDs) under `folder/`. */
export async function ctFixtureRecords(folder = 'ct'): Promise<InstanceRecord[]> {
  const dir = 'volumes/ct-dicom-j2k';
  const names = (await readdir(fixture(dir))).sort();
  return Promise.all(names.map((name) => fixtureRecord(`${dir}/${name}`, `${folder}/${name}`)));
}

export interface Variation {
  key: string;
  version?: string;
  sopUid?: string;
  seriesUid?: string;
  studyUid?: string;
  patientName?: string;
  patientId?: string;
  studyDate?: string | null;
  studyTime?: string;
  accessionNumber?: string;
  studyDescription?: string;
  referringPhysicianName?: string;
  modality?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  instanceNumber?: number;
  /** More attributes of the instance (tags not kept in columns). */
  extra?: DicomJson;
}

const text = (vr: string, value: string): DicomJsonAttribute =>
  vr === 'PN' ? { vr, Value: [{ Alphabetic: value }] } : { vr, Value: [value] };

/** A clone of `base` with the given attributes changed, consistent in columns and JSON. */
export function vary(base: InstanceRecord, v: Variation): InstanceRecord {
  const r = structuredClone(base);
  const json = r.json;
  const set = (tagKey: string, vr: string, value: string | number | null | undefined) => {
    if (value === undefined) return;
    if (value === null) json[tagKey] = { vr };
    else json[tagKey] = typeof value === 'number' ? { vr, Value: [value] } : text(vr, value);
  };
  r.key = v.key;
  r.version = v.version ?? r.version;
  set('00080018', 'UI', v.sopUid);
  set('0020000E', 'UI', v.seriesUid);
  set('0020000D', 'UI', v.studyUid);
  set('00100010', 'PN', v.patientName);
  set('00100020', 'LO', v.patientId);
  set('00080020', 'DA', v.studyDate);
  set('00080030', 'TM', v.studyTime);
  set('00080050', 'SH', v.accessionNumber);
  set('00081030', 'LO', v.studyDescription);
  set('00080090', 'PN', v.referringPhysicianName);
  set('00080060', 'CS', v.modality);
  set('00200011', 'IS', v.seriesNumber);
  set('0008103E', 'LO', v.seriesDescription);
  set('00200013', 'IS', v.instanceNumber);
  Object.assign(json, v.extra ?? {});
  r.sopUid = v.sopUid ?? r.sopUid;
  r.seriesUid = v.seriesUid ?? r.seriesUid;
  r.studyUid = v.studyUid ?? r.studyUid;
  r.instanceNumber = v.instanceNumber ?? r.instanceNumber;
  r.warnings = [];
  const value = (tagKey: string): string | undefined => {
    const first = json[tagKey]?.Value?.[0];
    if (first === undefined || first === null) return undefined;
    return typeof first === 'object'
      ? ((first as { Alphabetic?: string }).Alphabetic ?? undefined)
      : String(first);
  };
  r.study = {
    studyUid: r.studyUid,
    patientName: value('00100010'),
    patientId: value('00100020'),
    patientBirthDate: value('00100030'),
    patientSex: value('00100040'),
    studyDate: value('00080020'),
    studyTime: value('00080030'),
    accessionNumber: value('00080050'),
    studyId: value('00200010'),
    referringPhysicianName: value('00080090'),
    studyDescription: value('00081030'),
    json: pick(json, STUDY_LEVEL_TAGS),
  };
  const seriesNumber = json['00200011']?.Value?.[0];
  r.series = {
    seriesUid: r.seriesUid,
    studyUid: r.studyUid,
    modality: value('00080060'),
    seriesNumber: typeof seriesNumber === 'number' ? seriesNumber : undefined,
    seriesDescription: value('0008103E'),
    ppsStartDate: value('00400244'),
    ppsStartTime: value('00400245'),
    json: pick(json, SERIES_LEVEL_TAGS),
  };
  return r;
}
