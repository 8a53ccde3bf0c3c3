// QIDO matching (PS3.4 C.2.2.2, PS3.18 §8.3.4) compiled to parameterised SQL for both catalog
// databases. A match names an attribute (tag + VR) and a value; where the catalog keeps the
// attribute in a column it is matched there, otherwise on the stored DICOM JSON of the
// instances below the row (EXISTS), so any attribute of the headers can be matched.
//
//   UI with backslashes -> IN (list); DA/TM/DT "a-b", "-b", "a-" -> ranges; `*`/`?` in text VRs ->
//   GLOB (SQLite, case-sensitive) / LIKE (PostgreSQL); PN with fuzzymatching -> case- and
//   caret-insensitive, matching the start of any name component; numbers compared as numbers.

import { BadRequest } from '../errors.js';
import type { Level } from './levels.js';
import type { SqlValue } from './sql.js';

export interface Match {
  /** `0020000D` form. */
  tag: string;
  vr: string;
  value: string;
}

export interface CatalogQuery {
  level: Level;
  matches: Match[];
  fuzzy: boolean;
  /** Restrict to these studies (path parameters, token scope); undefined = all. */
  studyUids?: readonly string[];
  seriesUid?: string;
  limit: number;
  offset: number;
}

type Dialect = 'sqlite' | 'postgres';
type Table = 'st' | 'se' | 'i';

interface Column {
  table: Table;
  column: string;
}

/** Attributes kept in columns, by tag. */
const COLUMNS: Record<string, Column> = {
  '0020000D': { table: 'st', column: 'study_uid' },
  '00080020': { table: 'st', column: 'study_date' },
  '00080030': { table: 'st', column: 'study_time' },
  '00080050': { table: 'st', column: 'accession_number' },
  '00100010': { table: 'st', column: 'patient_name' },
  '00100020': { table: 'st', column: 'patient_id' },
  '00100030': { table: 'st', column: 'patient_birth_date' },
  '00100040': { table: 'st', column: 'patient_sex' },
  '00200010': { table: 'st', column: 'study_id' },
  '00080090': { table: 'st', column: 'referring_physician_name' },
  '00081030': { table: 'st', column: 'study_description' },
  '0020000E': { table: 'se', column: 'series_uid' },
  '00080060': { table: 'se', column: 'modality' },
  '00200011': { table: 'se', column: 'series_number' },
  '0008103E': { table: 'se', column: 'series_description' },
  '00400244': { table: 'se', column: 'pps_start_date' },
  '00400245': { table: 'se', column: 'pps_start_time' },
  '00080018': { table: 'i', column: 'sop_uid' },
  '00080016': { table: 'i', column: 'sop_class_uid' },
  '00200013': { table: 'i', column: 'instance_number' },
  '00280010': { table: 'i', column: 'rows_' },
  '00280011': { table: 'i', column: 'columns_' },
  '00280100': { table: 'i', column: 'bits_allocated' },
  '00280008': { table: 'i', column: 'number_of_frames' },
};

const WILDCARD_VRS = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UR', 'UT']);
const RANGE_VRS = new Set(['DA', 'TM', 'DT']);
const NUMERIC_VRS = new Set(['IS', 'DS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV']);
const MODALITIES_IN_STUDY = '00080061';

/** Which tables a query at `level` has joined (tables below it are reached through EXISTS). */
const JOINED: Record<Level, readonly Table[]> = {
  study: ['st'],
  series: ['st', 'se'],
  instance: ['st', 'se', 'i'],
};

export interface CompiledQuery {
  sql: string;
  params: SqlValue[];
}

class Builder {
  readonly params: SqlValue[] = [];
  constructor(readonly dialect: Dialect) {}

  param(value: SqlValue): string {
    this.params.push(value);
    return '?';
  }

  /** A case-sensitive (or not) wildcard match of `expr` against a DICOM `*`/`?` pattern. */
  pattern(expr: string, value: string, caseInsensitive: boolean): string {
    if (this.dialect === 'sqlite') {
      const glob = value.replace(/\[/g, '[[]');
      return caseInsensitive
        ? `lower(${expr}) GLOB ${this.param(glob.toLowerCase())}`
        : `${expr} GLOB ${this.param(glob)}`;
    }
    const like = value
      .replace(/[\\%_]/g, (c) => '\\' + c)
      .replace(/\*/g, '%')
      .replace(/\?/g, '_');
    return `${expr} ${caseInsensitive ? 'ILIKE' : 'LIKE'} ${this.param(like)} ESCAPE '\\'`;
  }

  /** The first value of an attribute in the stored DICOM JSON of `alias`. */
  jsonValue(alias: string, tag: string, vr: string): string {
    if (this.dialect === 'sqlite') {
      const path = `$."${tag}".Value[0]${vr === 'PN' ? '.Alphabetic' : ''}`;
      return `json_extract(${alias}.json, ${this.param(path)})`;
    }
    const key = this.param(tag);
    return vr === 'PN'
      ? `(${alias}.json -> ${key}::text -> 'Value' -> 0 ->> 'Alphabetic')`
      : `(${alias}.json -> ${key}::text -> 'Value' ->> 0)`;
  }
}

function isUniversal(value: string): boolean {
  return value === '' || /^\*+$/.test(value);
}

/** The SQL condition of one match on one expression. */
function condition(b: Builder, expr: string, match: Match, fuzzy: boolean, numericExpr: boolean): string {
  const { vr, value } = match;
  if (vr === 'UI') {
    const uids = value.split('\\').filter((u) => u !== '');
    if (uids.some((u) => !/^[0-9.]{1,64}$/.test(u))) {
      throw new BadRequest(`invalid UID list for ${match.tag}: ${value.slice(0, 100)}`);
    }
    return uids.length === 1
      ? `${expr} = ${b.param(uids[0])}`
      : `${expr} IN (${uids.map((u) => b.param(u)).join(', ')})`;
  }
  if (RANGE_VRS.has(vr) && value.includes('-')) {
    const [from, to, ...rest] = value.split('-');
    const format =
      vr === 'DA' ? /^\d{8}$/ : vr === 'TM' ? /^\d{2,6}(\.\d{1,6})?$/ : /^\d{4,14}(\.\d{1,6})?([+-]\d{4})?$/;
    if (
      rest.length > 0 ||
      (from === '' && to === '') ||
      [from, to].some((v) => v !== '' && !format.test(v))
    ) {
      throw new BadRequest(`invalid ${vr} range for ${match.tag}: ${value.slice(0, 100)}`);
    }
    const parts: string[] = [];
    // Byte-wise comparison (PostgreSQL's locale collations ignore '.'); an upper bound includes
    // every value that starts with it (TM 14 includes 14:59:59; '~' sorts after digits and '.').
    const ordered = b.dialect === 'postgres' ? `${expr} COLLATE "C"` : expr;
    if (from !== '') parts.push(`${ordered} >= ${b.param(from)}`);
    if (to !== '') parts.push(`${ordered} <= ${b.param(to + '~')}`);
    return `(${expr} IS NOT NULL AND ${parts.join(' AND ')})`;
  }
  if (vr === 'DA' && !/^\d{8}$/.test(value)) {
    throw new BadRequest(`invalid date for ${match.tag}: ${value.slice(0, 100)} (YYYYMMDD or a range)`);
  }
  if (NUMERIC_VRS.has(vr)) {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n)) {
      throw new BadRequest(`invalid number for ${match.tag}: ${value.slice(0, 100)}`);
    }
    return numericExpr || b.dialect === 'sqlite'
      ? `${expr} = ${b.param(n)}`
      : `${expr} = ${b.param(String(n))}`;
  }
  if (vr === 'PN' && fuzzy) {
    const words = value
      .toLowerCase()
      .replace(/[\^=]+/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
    // Fuzzy: the (caret-free, lower-case) name has a component starting with the value. The
    // carets of the stored name become spaces here too (patient_name_fuzzy has none left; every
    // other person name, a column or the stored JSON, still has them).
    const withWildcards = /[*?]/.test(words) ? words : `${words}*`;
    return b.pattern(`(' ' || replace(replace(${expr}, '^', ' '), '=', ' '))`, `* ${withWildcards}`, true);
  }
  if (WILDCARD_VRS.has(vr) && /[*?]/.test(value)) return b.pattern(expr, value, false);
  return `${expr} = ${b.param(value)}`;
}

/** Correlates a sub-table to the current row of the query's level. */
function correlation(level: Level, table: 'se' | 'i', alias: string): string {
  if (table === 'se') return `${alias}.study_uid = st.study_uid`;
  return level === 'study'
    ? `${alias}.study_uid = st.study_uid AND ${alias}.served = 1`
    : `${alias}.series_uid = se.series_uid AND ${alias}.served = 1`;
}

function compileMatch(b: Builder, query: CatalogQuery, match: Match, n: number): string | undefined {
  // The tag names a JSON path in the SQL (as a parameter); anything but 8 hex digits is refused.
  if (!/^[0-9A-F]{8}$/.test(match.tag)) throw new BadRequest(`invalid tag ${match.tag.slice(0, 100)}`);
  if (isUniversal(match.value)) return undefined;
  if (match.tag === MODALITIES_IN_STUDY) {
    const modalities = match.value.split('\\').filter((m) => m !== '');
    const alias = `m${n}`;
    const inner = modalities.map((m) =>
      condition(b, `${alias}.modality`, { ...match, vr: 'CS', value: m }, false, false),
    );
    return `EXISTS (SELECT 1 FROM series ${alias} WHERE ${alias}.study_uid = st.study_uid AND (${inner.join(' OR ')}))`;
  }
  const column = COLUMNS[match.tag];
  const joined = JOINED[query.level];
  if (column && joined.includes(column.table)) {
    const fuzzyColumn = match.vr === 'PN' && query.fuzzy && column.column === 'patient_name';
    const expr = fuzzyColumn ? 'st.patient_name_fuzzy' : `${column.table}.${column.column}`;
    return condition(b, expr, match, query.fuzzy, true);
  }
  if (column && column.table === 'se') {
    // A series attribute at the study level: some series of the study matches.
    const alias = `s${n}`;
    const inner = condition(b, `${alias}.${column.column}`, match, query.fuzzy, true);
    return `EXISTS (SELECT 1 FROM series ${alias} WHERE ${correlation(query.level, 'se', alias)} AND ${inner})`;
  }
  if (query.level === 'instance')
    return condition(b, b.jsonValue('i', match.tag, match.vr), match, query.fuzzy, false);
  // Anything else: some instance below the row has the attribute.
  const alias = `x${n}`;
  const expr = column ? `${alias}.${column.column}` : b.jsonValue(alias, match.tag, match.vr);
  const inner = condition(b, expr, match, query.fuzzy, column !== undefined);
  return `EXISTS (SELECT 1 FROM instances ${alias} WHERE ${correlation(query.level, 'i', alias)} AND ${inner})`;
}

const FROM: Record<Level, string> = {
  study: 'studies st',
  series: 'series se JOIN studies st ON st.study_uid = se.study_uid',
  instance:
    'instances i JOIN series se ON se.series_uid = i.series_uid JOIN studies st ON st.study_uid = i.study_uid',
};

const SELECT: Record<Level, string> = {
  study: 'st.study_uid, st.json AS study_json',
  series: 'st.study_uid, se.series_uid, st.json AS study_json, se.json AS series_json',
  instance:
    'st.study_uid, se.series_uid, i.sop_uid, i.key, st.json AS study_json, se.json AS series_json, i.json AS instance_json',
};

const ORDER: Record<Level, string> = {
  study: "COALESCE(st.study_date, '') DESC, COALESCE(st.study_time, '') DESC, st.study_uid",
  series: 'COALESCE(se.series_number, 2147483647), se.series_uid',
  instance: 'COALESCE(i.instance_number, 2147483647), i.key',
};

/** SELECT of one page (`limit + 1` rows, so the caller knows whether more exist). */
export function compileQuery(query: CatalogQuery, dialect: Dialect): CompiledQuery {
  const b = new Builder(dialect);
  const where: string[] = [];
  if (query.level === 'instance') where.push('i.served = 1');
  // A series or study whose instances are all duplicates served elsewhere is not listed.
  if (query.level === 'series') {
    where.push('EXISTS (SELECT 1 FROM instances v WHERE v.series_uid = se.series_uid AND v.served = 1)');
  }
  if (query.level === 'study') {
    where.push('EXISTS (SELECT 1 FROM instances v WHERE v.study_uid = st.study_uid AND v.served = 1)');
  }
  if (query.studyUids !== undefined) {
    if (query.studyUids.length === 0) where.push('1 = 0');
    else where.push(`st.study_uid IN (${query.studyUids.map((u) => b.param(u)).join(', ')})`);
  }
  if (query.seriesUid !== undefined) where.push(`se.series_uid = ${b.param(query.seriesUid)}`);
  query.matches.forEach((match, n) => {
    const sql = compileMatch(b, query, match, n);
    if (sql) where.push(sql);
  });
  const sql =
    `SELECT ${SELECT[query.level]} FROM ${FROM[query.level]}` +
    (where.length ? ` WHERE ${where.join(' AND ')}` : '') +
    ` ORDER BY ${ORDER[query.level]} LIMIT ${b.param(query.limit + 1)} OFFSET ${b.param(query.offset)}`;
  return { sql, params: b.params };
}
