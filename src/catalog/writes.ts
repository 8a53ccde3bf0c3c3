// The catalog's write path inside one transaction: an object's row (its listing version and
// what it turned out to be), its instances with the served/duplicate rule, the study and series
// they belong to, and the clean-up after removals. Used by `Catalog.applyBatch` and friends.

import { fuzzyName, type InstanceRecord } from './record.js';
import type { Sql, SqlValue } from './sql.js';

/** What an object in storage turned out to be. */
export type ObjectKind = 'dicom' | 'nifti' | 'other' | 'error';

const nullable = (value: string | number | undefined): SqlValue => value ?? null;

export async function upsertObject(
  tx: Sql,
  key: string,
  version: string,
  size: number,
  kind: ObjectKind,
  reason: string | undefined,
  scan: number,
  now: string,
): Promise<boolean> {
  // A changed object's instances are gone until it is recorded again.
  const replaced = (await tx.run('DELETE FROM instances WHERE object_key = ?', [key])) > 0;
  await tx.run(
    `INSERT INTO objects (key, version, size, kind, reason, seen_scan, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET version = excluded.version, size = excluded.size, kind = excluded.kind,
       reason = excluded.reason, indexed_at = excluded.indexed_at,
       seen_scan = CASE WHEN objects.seen_scan > excluded.seen_scan THEN objects.seen_scan ELSE excluded.seen_scan END`,
    [key, version, size, kind, nullable(reason), scan, now],
  );
  return replaced;
}

/** Instance records grouped by the object they come from, in order. */
export function byObject(records: readonly InstanceRecord[]): Map<string, InstanceRecord[]> {
  const out = new Map<string, InstanceRecord[]>();
  for (const r of records) {
    const key = r.objectKey ?? r.key;
    const list = out.get(key);
    if (list) list.push(r);
    else out.set(key, [r]);
  }
  return out;
}

/** Records the instances of one object; true when they replaced an earlier record of it. */
export async function putObjectInstances(
  tx: Sql,
  records: InstanceRecord[],
  scan: number,
  now: string,
): Promise<boolean> {
  const first = records[0];
  const objectKey = first.objectKey ?? first.key;
  const kind = first.pixelData && 'nifti' in first.pixelData ? 'nifti' : 'dicom';
  const warnings = first.warnings.join('; ') || undefined;
  const replaced = await upsertObject(tx, objectKey, first.version, first.size, kind, warnings, scan, now);
  for (const r of records) await putInstance(tx, r, objectKey);
  return replaced;
}

/** Records one instance of an object already recorded. */
async function putInstance(tx: Sql, r: InstanceRecord, objectKey: string): Promise<void> {
  // The first key (in byte order) serves a SOP Instance UID that several objects claim.
  const earlier = await tx.all('SELECT 1 AS x FROM instances WHERE sop_uid = ? AND key < ?', [
    r.sopUid,
    r.key,
  ]);
  const served = earlier.length === 0 ? 1 : 0;
  if (served)
    await tx.run('UPDATE instances SET served = 0 WHERE sop_uid = ? AND key > ?', [r.sopUid, r.key]);
  await tx.run(
    `INSERT INTO instances (key, object_key, sop_uid, served, series_uid, study_uid, sop_class_uid, instance_number,
       rows_, columns_, bits_allocated, number_of_frames, transfer_syntax, version, size, pixel_data, warnings, json)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      r.key,
      objectKey,
      r.sopUid,
      served,
      r.seriesUid,
      r.studyUid,
      nullable(r.sopClassUid),
      nullable(r.instanceNumber),
      nullable(r.rows),
      nullable(r.columns),
      nullable(r.bitsAllocated),
      nullable(r.numberOfFrames),
      r.transferSyntax,
      r.version,
      r.size,
      r.pixelData ? JSON.stringify(r.pixelData) : null,
      r.warnings.length ? JSON.stringify(r.warnings) : null,
      JSON.stringify(r.json),
    ],
  );
  const st = r.study;
  await tx.run(
    `INSERT INTO studies (study_uid, patient_name, patient_name_fuzzy, patient_id, patient_birth_date, patient_sex,
       study_date, study_time, accession_number, study_id, referring_physician_name, study_description, json)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (study_uid) DO UPDATE SET patient_name = excluded.patient_name,
       patient_name_fuzzy = excluded.patient_name_fuzzy, patient_id = excluded.patient_id,
       patient_birth_date = excluded.patient_birth_date, patient_sex = excluded.patient_sex,
       study_date = excluded.study_date, study_time = excluded.study_time,
       accession_number = excluded.accession_number, study_id = excluded.study_id,
       referring_physician_name = excluded.referring_physician_name,
       study_description = excluded.study_description, json = excluded.json`,
    [
      st.studyUid,
      nullable(st.patientName),
      nullable(fuzzyName(st.patientName)),
      nullable(st.patientId),
      nullable(st.patientBirthDate),
      nullable(st.patientSex),
      nullable(st.studyDate),
      nullable(st.studyTime),
      nullable(st.accessionNumber),
      nullable(st.studyId),
      nullable(st.referringPhysicianName),
      nullable(st.studyDescription),
      JSON.stringify(st.json),
    ],
  );
  const se = r.series;
  await tx.run(
    `INSERT INTO series (series_uid, study_uid, modality, series_number, series_description, pps_start_date,
       pps_start_time, json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (series_uid) DO UPDATE SET study_uid = excluded.study_uid, modality = excluded.modality,
       series_number = excluded.series_number, series_description = excluded.series_description,
       pps_start_date = excluded.pps_start_date, pps_start_time = excluded.pps_start_time, json = excluded.json`,
    [
      se.seriesUid,
      se.studyUid,
      nullable(se.modality),
      nullable(se.seriesNumber),
      nullable(se.seriesDescription),
      nullable(se.ppsStartDate),
      nullable(se.ppsStartTime),
      JSON.stringify(se.json),
    ],
  );
}

/** After removals: promote a duplicate whose served twin went, drop empty series and studies. */
export async function removeOrphans(tx: Sql): Promise<void> {
  await tx.run(
    `UPDATE instances SET served = 1 WHERE key IN (
       SELECT MIN(key) FROM instances GROUP BY sop_uid HAVING MAX(served) = 0)`,
  );
  await tx.run(
    'DELETE FROM series WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_uid = series.series_uid)',
  );
  await tx.run(
    'DELETE FROM studies WHERE NOT EXISTS (SELECT 1 FROM series s WHERE s.study_uid = studies.study_uid)',
  );
}
