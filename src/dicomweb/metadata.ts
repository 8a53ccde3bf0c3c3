// WADO-RS metadata (PS3.18 §10.4.1.1.2, Annex F): the stored DICOM JSON of each instance, served
// from the catalog without touching storage. Relative bulk data URIs become absolute under the
// instance's URL, and AvailableTransferSyntaxUID (0008,3002) says what frames can be had in.

import { createHash } from 'node:crypto';
import type { StoredInstance } from '../catalog/catalog.js';
import { frameSyntax } from './frames.js';
import type { DicomJson, DicomJsonValue } from '../dicom/json.js';

/** `<root>/studies/<study>/series/<series>/instances/<sop>`. */
export function instanceUrl(
  baseUrl: string,
  instance: Pick<StoredInstance, 'studyUid' | 'seriesUid' | 'sopUid'>,
): string {
  return `${baseUrl}/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopUid}`;
}

function withAbsoluteBulk(json: DicomJson, base: string): DicomJson {
  const out: DicomJson = {};
  for (const [tag, attribute] of Object.entries(json)) {
    if (attribute.BulkDataURI !== undefined && !/^[a-z]+:/i.test(attribute.BulkDataURI)) {
      out[tag] = { vr: attribute.vr, BulkDataURI: `${base}/${attribute.BulkDataURI}` };
    } else if (attribute.vr === 'SQ' && attribute.Value) {
      out[tag] = {
        vr: 'SQ',
        Value: attribute.Value.map((item: DicomJsonValue) => withAbsoluteBulk(item as DicomJson, base)),
      };
    } else out[tag] = attribute;
  }
  return out;
}

/** The metadata of one instance as served. */
export function instanceMetadata(instance: StoredInstance, baseUrl: string): DicomJson {
  const json = withAbsoluteBulk(instance.json, instanceUrl(baseUrl, instance));
  json['00083002'] = { vr: 'UI', Value: [frameSyntax(instance.transferSyntax)] };
  return Object.fromEntries(Object.entries(json).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** A strong validator of a set of instances: changes whenever one of them is re-indexed. */
export function metadataEtag(
  instances: ReadonlyArray<Pick<StoredInstance, 'key' | 'version' | 'sopUid'>>,
): string {
  const hash = createHash('sha256');
  for (const i of instances) hash.update(`${i.key}\0${i.version}\0${i.sopUid}\n`);
  return `"${hash.digest('base64url').slice(0, 27)}"`;
}
