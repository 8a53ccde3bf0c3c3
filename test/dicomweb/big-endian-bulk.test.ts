// Bulk data of explicit VR big endian files (dcmtk's `dcmconv +tb` of a pydicom-written native
// with large OW, OF, OD and OL values, one inside a sequence): every BulkDataURI of the
// metadata answers the value in little endian (PS3.18 §8.7.3.3.1), equal to the bytes of the same
// value in the little endian source; an address the metadata does not name is 404.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { request, startIndexedServer } from '../support/server.js';
import { bodyOfPart } from '../support/native-series.js';
import { python } from '../volumes/python.js';

const STUDY = '1.2.826.0.1.3680043.8.498.5454';
const URL = `/dicomweb/studies/${STUDY}/series/${STUDY}.1/instances/${STUDY}.1.1`;

let dir: string;
let server: RunningServer;
/** Tag (8 hex digits) -> the value's bytes in the little endian source. */
let values: Record<string, Buffer>;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'big-endian-bulk-'));
  const store = path.join(dir, 'store');
  await mkdir(store);
  const out = python<Record<string, string>>(
    `import base64, json, sys, numpy as np, pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
ds = Dataset(); fm = FileMetaDataset()
fm.TransferSyntaxUID = '1.2.840.10008.1.2.1'; fm.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
fm.MediaStorageSOPInstanceUID = '${STUDY}.1.1'; ds.file_meta = fm
ds.SOPClassUID = fm.MediaStorageSOPClassUID; ds.SOPInstanceUID = fm.MediaStorageSOPInstanceUID
ds.StudyInstanceUID = '${STUDY}'; ds.SeriesInstanceUID = '${STUDY}.1'; ds.Modality = 'CT'
ds.Rows = 4; ds.Columns = 4; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
ds.BitsAllocated = 16; ds.BitsStored = 16; ds.HighBit = 15; ds.PixelRepresentation = 0
n = np.arange(1024)
ds.add_new(0x00281201, 'OW', (n * 257 + 3).astype('<u2').tobytes())           # 2 KiB of 16-bit
ds.add_new(0x00640009, 'OF', (n * 1.25 - 7).astype('<f4').tobytes())          # 4 KiB of float32
ds.add_new(0x00660022, 'OD', (n * 0.001 + 1e9).astype('<f8').tobytes())       # 8 KiB of float64
ds.add_new(0x00660040, 'OL', (n * 65537 + 11).astype('<u4').tobytes())        # 4 KiB of uint32
item = Dataset(); item.add_new(0x0070150D, 'OD', (n * 0.5 - 3).astype('<f8').tobytes())  # in an item
ds.ReferencedImageSequence = Sequence([item])
ds.PixelData = np.arange(16, dtype='<u2').tobytes()
ds.is_little_endian = True; ds.is_implicit_VR = False
ds.save_as(sys.argv[1], write_like_original=False)
le = pydicom.dcmread(sys.argv[1])
r = {f'{t:08X}': base64.b64encode(le[t].value).decode() for t in [0x00281201, 0x00640009, 0x00660022, 0x00660040]}
r['0070150D'] = base64.b64encode(le.ReferencedImageSequence[0][0x0070150D].value).decode()
print(json.dumps(r))`,
    [path.join(dir, 'native.dcm')],
  );
  values = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  execFileSync('dcmconv', ['+tb', path.join(dir, 'native.dcm'), path.join(store, 'big-endian.dcm')]);
  server = await startIndexedServer(store);
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('bulk data of a big endian instance', () => {
  it('answers every BulkDataURI of its metadata in little endian', async () => {
    const [meta] = (await request(server, `${URL}/metadata`)).json() as Array<
      Record<
        string,
        { vr: string; BulkDataURI?: string; Value?: Array<Record<string, { BulkDataURI?: string }>> }
      >
    >;
    expect(meta['00020010']).toBeUndefined();
    const uris: Record<string, string> = {};
    for (const tag of Object.keys(values)) {
      const attribute = tag === '0070150D' ? meta['00081140'].Value![0][tag] : meta[tag];
      expect(attribute?.BulkDataURI, tag).toBeDefined();
      uris[tag] = attribute.BulkDataURI!.replace(/^.*?\/bulkdata\//, `${URL}/bulkdata/`);
    }
    for (const [tag, expected] of Object.entries(values)) {
      const one = await request(server, uris[tag], { headers: { Accept: 'application/octet-stream' } });
      expect(one.status, tag).toBe(200);
      expect(one.body.equals(expected), `${tag} single part`).toBe(true);
      const multi = await request(server, uris[tag]);
      expect(multi.status).toBe(200);
      expect(bodyOfPart(multi).equals(expected), `${tag} multipart`).toBe(true);
    }
  });

  it('refuses an address its metadata does not name (no VR to swap by)', async () => {
    const res = await request(server, `${URL}/bulkdata/200/64`, {
      headers: { Accept: 'application/octet-stream' },
    });
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ error: 'not_found', message: expect.stringMatching(/big endian/) });
  });
});
