// QIDO-RS (PS3.18 §10.6) without HTTP: the query parameters of a search as the catalog's query
// (matching keys by tag or keyword, `includefield` in its comma-separated and repeated forms,
// `fuzzymatching`, `limit` / `offset`), and the catalog's rows as DICOM JSON results with the
// default return attributes of each level (Tables 6.7.1-2, -2a, -2b) and the computed ones.

import type { Catalog, SearchRow } from '../catalog/catalog.js';
import { DEFAULT_RETURN, SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS, pick, type Level } from '../catalog/levels.js';
import type { CatalogQuery, Match } from '../catalog/query.js';
import type { DicomJson, DicomJsonAttribute } from '../dicom/json.js';
import { lookupKeyword, lookupTag } from '../dicom/dictionary.js';
import { BadRequest } from '../errors.js';

export interface QidoRequest {
  level: Level;
  /** Path parameters. */
  studyUid?: string;
  seriesUid?: string;
  /** Raw query parameters in order, repeated keys kept. */
  params: ReadonlyArray<readonly [string, string]>;
  /** Token scope: the studies the caller may see (undefined = all). */
  scope?: readonly string[];
  /** Server maximum for one page. */
  maxResults: number;
  /** Absolute DICOMweb root for RetrieveURL, e.g. `http://host/dicomweb`. */
  baseUrl: string;
}

export interface QidoResult {
  body: DicomJson[];
  /** The server cut the results short: PS3.18 §8.3.4.4 asks for a Warning header. */
  truncated: boolean;
}

/** Query parameters that are not attribute matches. */
const CONTROL = new Set(['limit', 'offset', 'fuzzymatching', 'includefield', 'token', 'charset', 'accept']);
const MAX_VALUE_LENGTH = 1024;

interface ParsedTag {
  tag: string;
  vr: string;
}

/** `0020000D` or `StudyInstanceUID` -> tag and VR; a 400 for anything else. */
export function parseAttribute(name: string): ParsedTag {
  if (/^[0-9A-Fa-f]{8}$/.test(name)) {
    const tag = name.toUpperCase();
    return { tag, vr: lookupTag(parseInt(tag, 16))?.vr ?? 'UN' };
  }
  if (name.includes('.')) {
    throw new BadRequest(`sequence matching (${name.slice(0, 100)}) is not supported`);
  }
  const entry = /^[A-Za-z][A-Za-z0-9]{0,63}$/.test(name) ? lookupKeyword(name) : undefined;
  if (!entry)
    throw new BadRequest(`unknown attribute ${name.slice(0, 100)} (a tag as 8 hex digits, or a keyword)`);
  return { tag: entry.tag.toString(16).toUpperCase().padStart(8, '0'), vr: entry.vr };
}

function nonNegativeInt(name: string, value: string, max: number): number {
  if (!/^\d{1,9}$/.test(value)) throw new BadRequest(`${name} must be a non-negative integer`);
  return Math.min(Number(value), max);
}

export interface ParsedQido {
  query: CatalogQuery;
  includeAll: boolean;
  include: Set<string>;
  /** The client asked for more than the server gives at once (or for no limit). */
  clientLimit: number | undefined;
}

export function parseQido(request: QidoRequest): ParsedQido {
  const matches: Match[] = [];
  const include = new Set<string>();
  let includeAll = false;
  let fuzzy = false;
  let limit: number | undefined;
  let offset = 0;
  const seen = new Set<string>();
  for (const [name, value] of request.params) {
    if (value.length > MAX_VALUE_LENGTH) throw new BadRequest(`value of ${name.slice(0, 100)} is too long`);
    if (name === 'includefield') {
      for (const field of value.split(',')) {
        const trimmed = field.trim();
        if (trimmed === '') continue;
        if (trimmed === 'all') includeAll = true;
        else include.add(parseAttribute(trimmed).tag);
      }
    } else if (name === 'fuzzymatching') {
      if (value !== 'true' && value !== 'false') throw new BadRequest('fuzzymatching must be true or false');
      fuzzy = value === 'true';
    } else if (name === 'limit') {
      limit = nonNegativeInt('limit', value, 1_000_000_000);
    } else if (name === 'offset') {
      offset = nonNegativeInt('offset', value, 1_000_000_000);
    } else if (!CONTROL.has(name)) {
      const attribute = parseAttribute(name);
      if (seen.has(attribute.tag)) throw new BadRequest(`${name.slice(0, 100)} is given more than once`);
      seen.add(attribute.tag);
      matches.push({ ...attribute, value });
    }
  }
  let studyUids = request.scope;
  if (request.studyUid !== undefined) {
    studyUids = studyUids === undefined || studyUids.includes(request.studyUid) ? [request.studyUid] : [];
  }
  const effective = Math.min(limit ?? request.maxResults, request.maxResults);
  return {
    query: {
      level: request.level,
      matches,
      fuzzy,
      studyUids,
      seriesUid: request.seriesUid,
      limit: effective,
      offset,
    },
    includeAll,
    include,
    clientLimit: limit,
  };
}

function empty(tag: string): DicomJsonAttribute {
  return { vr: lookupTag(parseInt(tag, 16))?.vr ?? 'UN' };
}

/** Runs a search and shapes its rows as the level's results. */
export async function searchQido(catalog: Catalog, request: QidoRequest): Promise<QidoResult> {
  const parsed = parseQido(request);
  const { rows, more } = await catalog.search(parsed.query);
  const level = request.level;
  const studyCounts = level === 'study' ? await catalog.studyCounts(rows.map((r) => r.studyUid)) : undefined;
  const seriesCounts =
    level === 'series' ? await catalog.seriesCounts(rows.map((r) => r.seriesUid!)) : undefined;
  const wanted = new Set([
    ...DEFAULT_RETURN[level],
    ...parsed.include,
    ...parsed.query.matches.map((m) => m.tag),
  ]);
  // Study attributes come along when the search spans studies (PS3.18 Table 6.7.1-2a/-2b).
  if (level !== 'study' && request.studyUid === undefined) {
    for (const t of DEFAULT_RETURN.study) if (STUDY_LEVEL_TAGS.has(t)) wanted.add(t);
  }
  if (level === 'instance' && request.seriesUid === undefined) {
    for (const t of DEFAULT_RETURN.series) if (SERIES_LEVEL_TAGS.has(t)) wanted.add(t);
  }
  const body = rows.map((row) => {
    const available = availableAttributes(row, level, parsed.includeAll);
    const out: DicomJson = {};
    const tags = parsed.includeAll ? new Set([...wanted, ...Object.keys(available)]) : wanted;
    for (const t of tags) out[t] = available[t] ?? empty(t);
    out['00080056'] = { vr: 'CS', Value: ['ONLINE'] };
    const studyUrl = `${request.baseUrl}/studies/${row.studyUid}`;
    if (level === 'study') {
      const counts = studyCounts!.get(row.studyUid)!;
      out['00080061'] = counts.modalities.length ? { vr: 'CS', Value: counts.modalities } : { vr: 'CS' };
      out['00201206'] = { vr: 'IS', Value: [counts.series] };
      out['00201208'] = { vr: 'IS', Value: [counts.instances] };
      out['00081190'] = { vr: 'UR', Value: [studyUrl] };
    } else if (level === 'series') {
      out['00201209'] = { vr: 'IS', Value: [seriesCounts!.get(row.seriesUid!) ?? 0] };
      out['00081190'] = { vr: 'UR', Value: [`${studyUrl}/series/${row.seriesUid}`] };
    } else {
      out['00081190'] = {
        vr: 'UR',
        Value: [`${studyUrl}/series/${row.seriesUid}/instances/${row.sopUid}`],
      };
    }
    return sortKeys(out);
  });
  // More rows exist and the client did not ask for a page of its own that ends here.
  const truncated = more && (parsed.clientLimit === undefined || parsed.clientLimit > parsed.query.limit);
  return { body, truncated };
}

/** Attributes a result of `level` can return: its own, then those of the levels above. */
function availableAttributes(row: SearchRow, level: Level, all: boolean): DicomJson {
  if (level === 'study') return row.study;
  if (level === 'series') return { ...row.study, ...row.series };
  // Bulk data and sequences of a whole header are not search results: only with includefield.
  const instance = all ? withoutBulk(row.instance!) : row.instance!;
  return { ...row.study, ...pick(row.series!, SERIES_LEVEL_TAGS), ...instance };
}

function withoutBulk(json: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const [t, value] of Object.entries(json)) if (value.BulkDataURI === undefined) out[t] = value;
  return out;
}

function sortKeys(json: DicomJson): DicomJson {
  const out: DicomJson = {};
  for (const t of Object.keys(json).sort()) out[t] = json[t];
  return out;
}
