// Versioned schema migrations of the catalog, the same for SQLite and PostgreSQL. Each migration
// runs once, in order, inside a transaction, and records its number in `catalog_migrations`;
// a database written by a newer MedStream (a higher number than we know) is refused rather
// than guessed at. `{JSON}` is the column type of stored DICOM JSON (TEXT / JSONB).

import { ConfigError } from '../errors.js';
import type { Sql } from './sql.js';

const MIGRATIONS: readonly string[][] = [
  [
    // Every object the indexer has looked at: its listing version decides whether a re-scan
    // reads it again; `kind` says what it turned out to be (dicom, nifti, other, error).
    `CREATE TABLE objects (
      key TEXT PRIMARY KEY,
      version TEXT NOT NULL,
      size BIGINT NOT NULL,
      kind TEXT NOT NULL,
      reason TEXT,
      seen_scan INTEGER NOT NULL,
      indexed_at TEXT NOT NULL
    )`,
    `CREATE INDEX objects_seen ON objects (seen_scan)`,
    `CREATE INDEX objects_kind ON objects (kind)`,
    `CREATE TABLE studies (
      study_uid TEXT PRIMARY KEY,
      patient_name TEXT,
      patient_name_fuzzy TEXT,
      patient_id TEXT,
      patient_birth_date TEXT,
      patient_sex TEXT,
      study_date TEXT,
      study_time TEXT,
      accession_number TEXT,
      study_id TEXT,
      referring_physician_name TEXT,
      study_description TEXT,
      json {JSON} NOT NULL
    )`,
    `CREATE INDEX studies_date ON studies (study_date)`,
    `CREATE INDEX studies_patient_id ON studies (patient_id)`,
    `CREATE INDEX studies_accession ON studies (accession_number)`,
    `CREATE TABLE series (
      series_uid TEXT PRIMARY KEY,
      study_uid TEXT NOT NULL,
      modality TEXT,
      series_number INTEGER,
      series_description TEXT,
      pps_start_date TEXT,
      pps_start_time TEXT,
      json {JSON} NOT NULL
    )`,
    `CREATE INDEX series_study ON series (study_uid)`,
    `CREATE INDEX series_modality ON series (modality)`,
    // One row per instance: a DICOM object is one instance (key = the object's key); a NIfTI
    // volume is one instance per slice (key = `<object key>#<slice>`). `served` = 1 for the one
    // instance answering for its SOP Instance UID (the first key in byte order when several
    // objects claim the same UID).
    `CREATE TABLE instances (
      key TEXT PRIMARY KEY,
      object_key TEXT NOT NULL REFERENCES objects (key) ON DELETE CASCADE,
      sop_uid TEXT NOT NULL,
      served INTEGER NOT NULL,
      series_uid TEXT NOT NULL,
      study_uid TEXT NOT NULL,
      sop_class_uid TEXT,
      instance_number INTEGER,
      rows_ INTEGER,
      columns_ INTEGER,
      bits_allocated INTEGER,
      number_of_frames INTEGER,
      transfer_syntax TEXT NOT NULL,
      version TEXT NOT NULL,
      size BIGINT NOT NULL,
      pixel_data TEXT,
      warnings TEXT,
      json {JSON} NOT NULL
    )`,
    `CREATE INDEX instances_sop ON instances (sop_uid)`,
    `CREATE INDEX instances_object ON instances (object_key)`,
    `CREATE INDEX instances_series ON instances (series_uid, served)`,
    `CREATE INDEX instances_study ON instances (study_uid, served)`,
    `CREATE TABLE catalog_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  ],
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the database to SCHEMA_VERSION. Safe to call from several replicas at once. */
export async function migrate(sql: Sql): Promise<void> {
  const json = sql.dialect === 'postgres' ? 'JSONB' : 'TEXT';
  await sql.transaction(async (tx) => {
    // PostgreSQL: one replica migrates at a time; the others wait here and find the work done.
    // The lock comes before any DDL: two concurrent `CREATE TABLE IF NOT EXISTS` of one new
    // table race in PostgreSQL's catalog (a unique violation on pg_type) instead of one winning.
    if (tx.dialect === 'postgres') await tx.all('SELECT pg_advisory_xact_lock(4242001)');
    await tx.run(
      'CREATE TABLE IF NOT EXISTS catalog_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)',
    );
    const rows = await tx.all<{ version: number }>('SELECT MAX(version) AS version FROM catalog_migrations');
    const current = Number(rows[0]?.version ?? 0);
    if (current > SCHEMA_VERSION) {
      throw new ConfigError(
        `catalog ${sql.description} has schema version ${current}, newer than this MedStream (${SCHEMA_VERSION})`,
      );
    }
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      for (const statement of MIGRATIONS[v - 1]) await tx.run(statement.replaceAll('{JSON}', json));
      await tx.run('INSERT INTO catalog_migrations (version, applied_at) VALUES (?, ?)', [
        v,
        new Date().toISOString(),
      ]);
    }
  });
}
