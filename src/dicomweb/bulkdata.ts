// Bulk data values as PS3.18 §8.7.3.3.1 sends uncompressed bulk data: little endian. A value of
// an explicit VR big endian instance is swapped by the VR its metadata records for that address
// (`bulkDataVr`, sequences included); an address the metadata does not name has no known VR.

import type { DicomJson } from '../dicom/json.js';
import { toLittleEndian } from '../dicom/parser.js';
import { TransferSyntax } from '../dicom/tags.js';
import { NotFound } from '../errors.js';

/** The VR of the attribute whose BulkDataURI is `uri` (relative, `bulkdata/<offset>/<length>`). */
export function bulkDataVr(json: DicomJson, uri: string, depth = 0): string | undefined {
  if (depth > 16) return undefined;
  for (const attribute of Object.values(json)) {
    if (attribute.BulkDataURI === uri) return attribute.vr;
    if (attribute.vr === 'SQ' && Array.isArray(attribute.Value)) {
      for (const item of attribute.Value as DicomJson[]) {
        const vr = bulkDataVr(item, uri, depth + 1);
        if (vr !== undefined) return vr;
      }
    }
  }
  return undefined;
}

/** The stored bytes of a bulk data value as little endian (swapped for a big endian instance). */
export function littleEndianBulkData(
  transferSyntax: string,
  json: DicomJson,
  offset: number,
  bytes: Uint8Array,
): Uint8Array {
  if (transferSyntax !== TransferSyntax.ExplicitVrBigEndian) return bytes;
  const uri = `bulkdata/${offset}/${bytes.length}`;
  const vr = bulkDataVr(json, uri);
  if (vr === undefined)
    throw new NotFound(
      `no attribute of this big endian instance has bulk data ${uri}: only addresses from its metadata are served (their VR says how to swap them)`,
    );
  return toLittleEndian(bytes, vr);
}
