// The DICOM data dictionary (PS3.6): VR and keyword of every standard tag, taken from dcmjs's
// dictionary rather than a copy of our own. Used where the wire carries no VR (implicit VR little
// endian) and where users name attributes by keyword (QIDO `includefield=PatientName`).
//
// dcmjs writes ambiguous VRs in lower case ("US or SS" as `xs`, "OB or OW" as `ox`); they are
// resolved to the VR the standard uses for implicit VR little endian (PS3.5 Annex A.1).

import dcmjs from 'dcmjs';

export interface DictionaryEntry {
  tag: number;
  vr: string;
  keyword: string;
}

const AMBIGUOUS: Record<string, string> = { xs: 'US', ox: 'OW', up: 'UL', lt: 'OW' };

let byTag: Map<number, DictionaryEntry> | undefined;
let byKeyword: Map<string, DictionaryEntry> | undefined;

function load(): void {
  byTag = new Map();
  byKeyword = new Map();
  // keyword -> { tag: "(GGGG,EEEE)", vr, name } (declared in dcmjs.d.ts).
  const nameMap = dcmjs.data.DicomMetaDictionary.nameMap;
  for (const entry of Object.values(nameMap)) {
    const match = /^\(([0-9A-F]{4}),([0-9A-F]{4})\)$/i.exec(entry.tag);
    if (!match || entry.vr === 'na') continue;
    const tag = ((parseInt(match[1], 16) << 16) | parseInt(match[2], 16)) >>> 0;
    const retired = entry.name.startsWith('RETIRED_');
    const keyword = retired ? entry.name.slice('RETIRED_'.length) : entry.name;
    const value = { tag, vr: AMBIGUOUS[entry.vr] ?? entry.vr, keyword };
    if (!retired || !byTag.has(tag)) byTag.set(tag, value);
    if (!retired || !byKeyword.has(keyword)) byKeyword.set(keyword, value);
  }
}

/** The dictionary entry of a tag (group-length tags and private tags have none). */
export function lookupTag(tag: number): DictionaryEntry | undefined {
  if (!byTag) load();
  return byTag!.get(tag >>> 0);
}

/** The tag of a keyword (`StudyInstanceUID`), case-sensitive as in PS3.6. */
export function lookupKeyword(keyword: string): DictionaryEntry | undefined {
  if (!byKeyword) load();
  return byKeyword!.get(keyword);
}

/** `0020000D` form of a tag, as DICOM JSON keys it. */
export function tagHex(tag: number): string {
  return (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
}
