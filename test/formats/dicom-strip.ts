// Test helper: a copy of a DICOM Part 10 object with its top-level ImageType element cut out, as
// files from the field come (the element's 8-byte explicit-VR header and its value are removed;
// nothing after it holds an absolute offset, so the rest of the object stays valid).
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag } from '../../src/dicom/tags.js';
import { BytesSource } from '../support/file-source.js';

export async function withoutImageType(bytes: Uint8Array, key: string): Promise<Uint8Array> {
  const header = await parseDicomHeader(new BytesSource(bytes, key));
  const element = header.dataset.get(Tag.ImageType);
  if (!element) throw new Error(`${key} has no ImageType to remove`);
  const start = element.offset - 8;
  const out = new Uint8Array(bytes.length - 8 - element.length);
  out.set(bytes.subarray(0, start));
  out.set(bytes.subarray(element.offset + element.length), start);
  return out;
}
