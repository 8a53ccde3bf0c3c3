// The catalog: what the indexer recorded about the objects in storage, and the queries the
// DICOMweb layer asks of it. One class over either database (sql.ts); it knows storage keys and
// DICOM attributes, nothing of HTTP.
//
//   indexer --applyBatch--> objects / instances / series / studies <--search, instance-- dicomweb

import type { DicomJson } from '../dicom/json.js';
import { compileQuery, type CatalogQuery } from './query.js';
import type { PixelDataLocation } from '../dicom/parser.js';
import type { InstanceRecord, NiftiSliceLocation } from './record.js';
import { byObject, putObjectInstances, removeOrphans, upsertObject, type ObjectKind } from './writes.js';
import { migrate } from './schema.js';
import { openSql, type Sql } from './sql.js';

export type { ObjectKind } from './writes.js';

/** An object the indexer looked at but did not record as an instance. */
export interface OtherObject {
  key: string;
  version: string;
  size: number;
  kind: Exclude<ObjectKind, 'dicom'>;
  reason?: string;
}

export interface IndexBatch {
  /** Unchanged objects seen by this scan. */
  seen: string[];
  instances: InstanceRecord[];
  others: OtherObject[];
}

export interface IndexProblem {
  key: string;
  kind: 'error' | 'duplicate';
  reason: string;
  indexedAt: string;
}

export interface SearchRow {
  studyUid: string;
  seriesUid?: string;
  sopUid?: string;
  key?: string;
  study: DicomJson;
  series?: DicomJson;
  instance?: DicomJson;
}

export interface StoredInstance {
  key: string;
  /** The stored object (differs from `key` for a NIfTI slice). */
  objectKey: string;
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  version: string;
  size: number;
  transferSyntax: string;
  numberOfFrames?: number;
  pixelData?: PixelDataLocation | NiftiSliceLocation;
  json: DicomJson;
}

const INSTANCE_COLUMNS =
  'key, object_key, sop_uid, series_uid, study_uid, version, size, transfer_syntax, number_of_frames, pixel_data, json';

function storedInstance(r: Record<string, unknown>): StoredInstance {
  return {
    key: r.key as string,
    objectKey: r.object_key as string,
    sopUid: r.sop_uid as string,
    seriesUid: r.series_uid as string,
    studyUid: r.study_uid as string,
    version: r.version as string,
    size: Number(r.size),
    transferSyntax: r.transfer_syntax as string,
    numberOfFrames: r.number_of_frames === null ? undefined : Number(r.number_of_frames),
    pixelData:
      typeof r.pixel_data === 'string'
        ? (JSON.parse(r.pixel_data) as StoredInstance['pixelData'])
        : undefined,
    json: json(r.json),
  };
}

function json(value: unknown): DicomJson {
  // SQLite returns TEXT, PostgreSQL parses JSONB.
  return (typeof value === 'string' ? JSON.parse(value) : value) as DicomJson;
}

export class Catalog {
  private constructor(readonly sql: Sql) {}

  /** Opens (and migrates) the catalog at a SQLite path or a postgres:// URL. */
  static async open(location: string): Promise<Catalog> {
    const sql = await openSql(location);
    try {
      await migrate(sql);
    } catch (e) {
      await sql.close();
      throw e;
    }
    return new Catalog(sql);
  }

  get description(): string {
    return this.sql.description;
  }

  close(): Promise<void> {
    return this.sql.close();
  }

  /** A new scan number; objects not seen by a complete scan are removed by `removeUnseen`. */
  async beginScan(): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.all<{ value: string }>("SELECT value FROM catalog_state WHERE name = 'scan'");
      const scan = Number(rows[0]?.value ?? 0) + 1;
      await tx.run(
        "INSERT INTO catalog_state (name, value) VALUES ('scan', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [String(scan)],
      );
      return scan;
    });
  }

  /**
   * Makes objects that an older indexer skipped or failed on read again, once per indexer version
   * (a new format learnt, a parser fix).
   */
  async invalidateSkipped(indexerVersion: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      const rows = await tx.all<{ value: string }>("SELECT value FROM catalog_state WHERE name = 'indexer'");
      if (rows[0]?.value === indexerVersion) return;
      await tx.run("UPDATE objects SET version = '' WHERE kind IN ('other', 'error')");
      await tx.run(
        "INSERT INTO catalog_state (name, value) VALUES ('indexer', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [indexerVersion],
      );
    });
  }

  /** The latest scan number (objects recorded outside a scan, by STOW-RS, take it). */
  async currentScan(): Promise<number> {
    const rows = await this.sql.all<{ value: string }>("SELECT value FROM catalog_state WHERE name = 'scan'");
    return Number(rows[0]?.value ?? 0);
  }

  /** The recorded listing version of each of `keys` that the catalog knows. */
  async versions(keys: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < keys.length; i += 500) {
      const chunk = keys.slice(i, i + 500);
      const rows = await this.sql.all<{ key: string; version: string }>(
        `SELECT key, version FROM objects WHERE key IN (${chunk.map(() => '?').join(', ')})`,
        chunk,
      );
      for (const row of rows) out.set(row.key, row.version);
    }
    return out;
  }

  /** Records one batch of indexing results in one transaction. */
  async applyBatch(batch: IndexBatch, scan: number): Promise<void> {
    const now = new Date().toISOString();
    await this.sql.transaction(async (tx) => {
      for (let i = 0; i < batch.seen.length; i += 500) {
        const chunk = batch.seen.slice(i, i + 500);
        // Never lowered: a slower, older scan of another replica must not make an object look
        // unseen to the newer scan that removes what it did not see.
        await tx.run(
          `UPDATE objects SET seen_scan = ? WHERE seen_scan < ? AND key IN (${chunk.map(() => '?').join(', ')})`,
          [scan, scan, ...chunk],
        );
      }
      let replaced = false;
      for (const other of batch.others) {
        replaced =
          (await upsertObject(
            tx,
            other.key,
            other.version,
            other.size,
            other.kind,
            other.reason,
            scan,
            now,
          )) || replaced;
      }
      for (const records of byObject(batch.instances).values()) {
        replaced = (await putObjectInstances(tx, records, scan, now)) || replaced;
      }
      // Only a replaced instance can leave an empty series or an unserved duplicate behind.
      if (replaced) await removeOrphans(tx);
    });
  }

  /** Removes objects under `prefix` that scan `scan` did not see (deleted from storage). */
  async removeUnseen(scan: number, prefix = ''): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const removed = await tx.run(
        prefix === ''
          ? 'DELETE FROM objects WHERE seen_scan < ?'
          : 'DELETE FROM objects WHERE seen_scan < ? AND substr(key, 1, ?) = ?',
        prefix === '' ? [scan] : [scan, prefix.length, prefix],
      );
      if (removed > 0) await removeOrphans(tx);
      return removed;
    });
  }

  /** Removes the given objects (a STOW replacement, a deleted object). */
  async removeKeys(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.sql.transaction(async (tx) => {
      await tx.run(`DELETE FROM objects WHERE key IN (${keys.map(() => '?').join(', ')})`, keys as string[]);
      await removeOrphans(tx);
    });
  }

  /** Objects that could not be indexed, and objects whose SOP Instance UID another object serves. */
  async problems(limit = 1000): Promise<IndexProblem[]> {
    const errors = await this.sql.all<{ key: string; reason: string; indexed_at: string }>(
      "SELECT key, reason, indexed_at FROM objects WHERE kind = 'error' ORDER BY key LIMIT ?",
      [limit],
    );
    const duplicates = await this.sql.all<{
      key: string;
      sop_uid: string;
      served_key: string;
      indexed_at: string;
    }>(
      `SELECT d.key, d.sop_uid, s.key AS served_key, o.indexed_at FROM instances d
       JOIN instances s ON s.sop_uid = d.sop_uid AND s.served = 1
       JOIN objects o ON o.key = d.object_key
       WHERE d.served = 0 ORDER BY d.key LIMIT ?`,
      [limit],
    );
    return [
      ...errors.map((e) => ({
        key: e.key,
        kind: 'error' as const,
        reason: e.reason,
        indexedAt: e.indexed_at,
      })),
      ...duplicates.map((d) => ({
        key: d.key,
        kind: 'duplicate' as const,
        reason: `SOP Instance UID ${d.sop_uid} is also stored as ${d.served_key}, which is served`,
        indexedAt: d.indexed_at,
      })),
    ];
  }

  /** Counts of what the catalog holds. */
  async counts(): Promise<{
    studies: number;
    series: number;
    instances: number;
    errors: number;
    objects: number;
  }> {
    const one = async (sql: string) => Number((await this.sql.all<{ n: number }>(sql))[0]?.n ?? 0);
    return {
      studies: await one('SELECT COUNT(*) AS n FROM studies'),
      series: await one('SELECT COUNT(*) AS n FROM series'),
      instances: await one('SELECT COUNT(*) AS n FROM instances WHERE served = 1'),
      errors: await one("SELECT COUNT(*) AS n FROM objects WHERE kind = 'error'"),
      objects: await one('SELECT COUNT(*) AS n FROM objects'),
    };
  }

  /** One page of QIDO results (`more`: rows exist past the page). */
  async search(query: CatalogQuery): Promise<{ rows: SearchRow[]; more: boolean }> {
    const { sql, params } = compileQuery(query, this.sql.dialect);
    const raw = await this.sql.all<Record<string, unknown>>(sql, params);
    const more = raw.length > query.limit;
    const rows = raw.slice(0, query.limit).map((r) => ({
      studyUid: r.study_uid as string,
      seriesUid: r.series_uid as string | undefined,
      sopUid: r.sop_uid as string | undefined,
      key: r.key as string | undefined,
      study: json(r.study_json),
      series: r.series_json === undefined ? undefined : json(r.series_json),
      instance: r.instance_json === undefined ? undefined : json(r.instance_json),
    }));
    return { rows, more };
  }

  /** Per study: series and instance counts and modalities (for the page's studies only). */
  async studyCounts(
    studyUids: readonly string[],
  ): Promise<Map<string, { series: number; instances: number; modalities: string[] }>> {
    const out = new Map<string, { series: number; instances: number; modalities: string[] }>();
    if (studyUids.length === 0) return out;
    for (const uid of studyUids) out.set(uid, { series: 0, instances: 0, modalities: [] });
    const marks = studyUids.map(() => '?').join(', ');
    const series = await this.sql.all<{ study_uid: string; modality: string | null; n: number }>(
      `SELECT study_uid, modality, COUNT(*) AS n FROM series WHERE study_uid IN (${marks}) GROUP BY study_uid, modality`,
      studyUids as string[],
    );
    for (const row of series) {
      const entry = out.get(row.study_uid)!;
      entry.series += Number(row.n);
      if (row.modality && !entry.modalities.includes(row.modality)) entry.modalities.push(row.modality);
    }
    const instances = await this.sql.all<{ study_uid: string; n: number }>(
      `SELECT study_uid, COUNT(*) AS n FROM instances WHERE served = 1 AND study_uid IN (${marks}) GROUP BY study_uid`,
      studyUids as string[],
    );
    for (const row of instances) out.get(row.study_uid)!.instances = Number(row.n);
    for (const entry of out.values()) entry.modalities.sort();
    return out;
  }

  /** Instances per series, for the page's series. */
  async seriesCounts(seriesUids: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (seriesUids.length === 0) return out;
    const rows = await this.sql.all<{ series_uid: string; n: number }>(
      `SELECT series_uid, COUNT(*) AS n FROM instances WHERE served = 1 AND series_uid IN (${seriesUids
        .map(() => '?')
        .join(', ')}) GROUP BY series_uid`,
      seriesUids as string[],
    );
    for (const uid of seriesUids) out.set(uid, 0);
    for (const row of rows) out.set(row.series_uid, Number(row.n));
    return out;
  }

  /** Whether a study / series (of that study) exists. */
  async exists(studyUid: string, seriesUid?: string): Promise<boolean> {
    const rows =
      seriesUid === undefined
        ? await this.sql.all('SELECT 1 AS x FROM studies WHERE study_uid = ?', [studyUid])
        : await this.sql.all('SELECT 1 AS x FROM series WHERE series_uid = ? AND study_uid = ?', [
            seriesUid,
            studyUid,
          ]);
    return rows.length > 0;
  }

  /** The served instance with this SOP Instance UID. */
  async instance(sopUid: string): Promise<StoredInstance | undefined> {
    const rows = await this.sql.all<Record<string, unknown>>(
      `SELECT ${INSTANCE_COLUMNS} FROM instances WHERE sop_uid = ? AND served = 1`,
      [sopUid],
    );
    return rows[0] ? storedInstance(rows[0]) : undefined;
  }

  /** The served instances of a study, or of one of its series, in series and instance order. */
  async instancesOf(studyUid: string, seriesUid?: string): Promise<StoredInstance[]> {
    return (await this.instanceRows(INSTANCE_COLUMNS, studyUid, seriesUid)).map(storedInstance);
  }

  /** The served instances of one series found by its UID alone, in instance order (segmentation requests). */
  async seriesInstances(seriesUid: string): Promise<StoredInstance[]> {
    const rows = await this.sql.all<Record<string, unknown>>(
      `SELECT ${INSTANCE_COLUMNS} FROM instances WHERE served = 1 AND series_uid = ?` +
        ' ORDER BY COALESCE(instance_number, 2147483647), key',
      [seriesUid],
    );
    return rows.map(storedInstance);
  }

  /** The served instances made from one stored object (the slices of a NIfTI volume), in key order. */
  async objectInstances(objectKey: string): Promise<StoredInstance[]> {
    const rows = await this.sql.all<Record<string, unknown>>(
      `SELECT ${INSTANCE_COLUMNS} FROM instances WHERE served = 1 AND object_key = ? ORDER BY key`,
      [objectKey],
    );
    return rows.map(storedInstance);
  }

  /** Up to `limit` served instances whose key starts with `prefix`, after key `after`, in key order. */
  async instancesUnder(prefix: string, after: string, limit: number): Promise<StoredInstance[]> {
    const rows = await this.sql.all<Record<string, unknown>>(
      `SELECT ${INSTANCE_COLUMNS} FROM instances WHERE served = 1 AND key > ? AND substr(key, 1, ?) = ? ORDER BY key LIMIT ?`,
      [after, prefix.length, prefix, limit],
    );
    return rows.map(storedInstance);
  }

  /** What identifies the versions of those instances (for validators), without their headers. */
  async versionsOf(
    studyUid: string,
    seriesUid?: string,
  ): Promise<Array<{ key: string; version: string; sopUid: string }>> {
    const rows = await this.instanceRows('key, version, sop_uid', studyUid, seriesUid);
    return rows.map((r) => ({
      key: r.key as string,
      version: r.version as string,
      sopUid: r.sop_uid as string,
    }));
  }

  private instanceRows(columns: string, studyUid: string, seriesUid?: string) {
    return this.sql.all<Record<string, unknown>>(
      `SELECT ${columns} FROM instances WHERE served = 1 AND study_uid = ?` +
        (seriesUid === undefined ? '' : ' AND series_uid = ?') +
        ' ORDER BY series_uid, COALESCE(instance_number, 2147483647), key',
      seriesUid === undefined ? [studyUid] : [studyUid, seriesUid],
    );
  }
}
