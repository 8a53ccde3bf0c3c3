// QIDO-RS against a real server over a directory of known studies plus the fixture CT (whose
// files have empty UIDs), through dicomweb-client for every route, and with plain fetch for what
// the client hides (status codes, headers, the repeated includefield form, errors).

import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { STUDIES, writeStudies } from '../support/radiology-studies.js';
import { request, startIndexedServer } from '../support/server.js';
import { dicomwebClient, value, type DicomJsonObject, type TestDicomwebClient } from './client.js';

const [A, B, C, D] = STUDIES;
let dir: string;
let server: RunningServer;
let client: TestDicomwebClient;

const uids = (results: DicomJsonObject[], tagKey = '0020000D') => results.map((r) => value(r, tagKey)).sort();
const json = async (p: string, init?: RequestInit) => {
  const res = await request(server, p, init);
  return { ...res, results: res.status === 200 ? (res.json() as DicomJsonObject[]) : [] };
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'qido-'));
  await writeStudies(path.join(dir, 'store'));
  await cp(fixture('volumes/ct-dicom-j2k'), path.join(dir, 'store', 'ct', 'abdomen'), { recursive: true });
  server = await startIndexedServer(path.join(dir, 'store'), ['--qido-max-results', '4']);
  client = dicomwebClient(server.url + '/dicomweb');
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('studies', () => {
  it('lists studies with the computed attributes, cut at the server maximum with a Warning', async () => {
    const res = await json('/dicomweb/studies', { headers: { Accept: 'application/dicom+json' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/dicom\+json/);
    expect(res.results).toHaveLength(4); // 5 studies, --qido-max-results 4
    expect(res.headers.get('warning')).toMatch(/^299 /);
    const a = (await client.searchForStudies({ queryParams: { StudyInstanceUID: A.uid } }))[0];
    expect(value(a, '00201206')).toBe(2);
    expect(value(a, '00201208')).toBe(5);
    expect(a['00080061'].Value).toEqual(['CT']);
    expect(value(a, '00081190')).toBe(`${server.url}/dicomweb/studies/${A.uid}`);
    expect(value(a, '00100010')).toBe('Doe^John');
    expect(value(a, '00080056')).toBe('ONLINE');
  });

  it('pages with limit and offset, without a Warning when the client chose the page', async () => {
    const first = await json('/dicomweb/studies?limit=2');
    const second = await json('/dicomweb/studies?limit=2&offset=2');
    const third = await json('/dicomweb/studies?limit=2&offset=4');
    expect(first.headers.get('warning')).toBeNull();
    const all = [...first.results, ...second.results, ...third.results].map((r) => value(r, '0020000D'));
    expect(all).toHaveLength(5);
    expect(new Set(all).size).toBe(5);
    // Newest study first.
    expect(value(first.results[0], '0020000D')).toBe(D.uid);
  });

  it('matches person names case-sensitively with wildcards, and fuzzily when asked', async () => {
    expect(uids(await client.searchForStudies({ queryParams: { PatientName: 'Doe*' } }))).toEqual([A.uid]);
    expect(uids(await client.searchForStudies({ queryParams: { PatientName: 'DOE^Jane' } }))).toEqual([
      B.uid,
    ]);
    expect(
      uids(await client.searchForStudies({ queryParams: { PatientName: 'doe', fuzzymatching: true } })),
    ).toEqual([A.uid, B.uid].sort());
    expect(
      uids(await client.searchForStudies({ queryParams: { PatientName: 'jürg', fuzzymatching: 'true' } })),
    ).toEqual([D.uid]);
    expect(uids(await client.searchForStudies({ queryParams: { '00100010': 'Sm?th^Ann' } }))).toEqual([
      C.uid,
    ]);
    expect(await client.searchForStudies({ queryParams: { PatientName: 'nobody' } })).toEqual([]);
  });

  it('decodes names in the instance character set', async () => {
    const d = await client.searchForStudies({ queryParams: { StudyInstanceUID: D.uid } });
    expect(value(d[0], '00100010')).toBe('Müller^Jürgen');
  });

  it('matches dates and times as ranges with open ends', async () => {
    const q = async (params: Record<string, string>) =>
      uids(await client.searchForStudies({ queryParams: params }));
    expect(await q({ StudyDate: '20240101-' })).toEqual([A.uid, D.uid].sort());
    expect(await q({ StudyDate: '20230101-20231231' })).toEqual([B.uid]);
    expect(await q({ StudyDate: '20231120' })).toEqual([B.uid]);
    const old = await q({ StudyDate: '-20221231' }); // C and the fixture CT (20221208)
    expect(old).toHaveLength(2);
    expect(old).toContain(C.uid);
    expect(await q({ StudyTime: '0700-0900' })).toEqual([B.uid, D.uid].sort());
    expect(await q({ StudyDate: '20240101-', StudyTime: '10-' })).toEqual([A.uid]);
  });

  it('matches UID lists, accession wildcards and modalities in study', async () => {
    const q = async (params: Record<string, string>) =>
      uids(await client.searchForStudies({ queryParams: params }));
    expect(await q({ StudyInstanceUID: `${A.uid}\\${C.uid}` })).toEqual([A.uid, C.uid].sort());
    expect(await q({ AccessionNumber: 'ACC?' })).toEqual([A.uid, B.uid, D.uid].sort());
    expect(await q({ AccessionNumber: 'X-3' })).toEqual([C.uid]);
    expect(await q({ ModalitiesInStudy: 'MR' })).toEqual([B.uid, D.uid].sort());
    expect(await q({ Modality: 'MR' })).toEqual([B.uid, D.uid].sort()); // a series attribute
    expect(await q({ SeriesDescription: 'Coronal' })).toEqual([A.uid]);
    expect(await q({ PatientID: 'P3', AccessionNumber: 'ACC1' })).toEqual([]);
  });

  it('returns includefield attributes in the comma-separated, repeated and keyword forms', async () => {
    const comma = await json(`/dicomweb/studies?StudyInstanceUID=${A.uid}&includefield=00081030,00100020`);
    expect(value(comma.results[0], '00081030')).toBe('CT ABDOMEN');
    const repeated = await json(
      `/dicomweb/studies?StudyInstanceUID=${A.uid}&includefield=StudyDescription&includefield=00100020`,
    );
    expect(value(repeated.results[0], '00081030')).toBe('CT ABDOMEN');
    const all = await json(`/dicomweb/studies?StudyInstanceUID=${A.uid}&includefield=all`);
    expect(value(all.results[0], '00081030')).toBe('CT ABDOMEN');
    const plain = await json(`/dicomweb/studies?StudyInstanceUID=${A.uid}`);
    expect(plain.results[0]['00081030']).toBeUndefined();
  });

  it('indexes files without UIDs under derived ones, all of a folder in one series', async () => {
    const ct = (await client.searchForStudies({ queryParams: { StudyDate: '20221208' } }))[0];
    const study = value(ct, '0020000D') as string;
    expect(study).toMatch(/^2\.25\.\d+$/);
    expect(value(ct, '00201206')).toBe(1);
    expect(value(ct, '00201208')).toBe(20);
    const instances = await client.searchForInstances({ studyInstanceUID: study });
    expect(instances).toHaveLength(4); // server maximum
    // SOP Instance UIDs come from the meta header (the files are named after them).
    expect(value(instances[0], '00080018')).toMatch(
      /^1\.3\.12\.2\.1107\.5\.1\.4\.60064\.30000022120808113428000016\d{3}$/,
    );
  });
});

describe('series and instances', () => {
  it('lists the series of a study with their instance counts, in series number order', async () => {
    const series = await client.searchForSeries({ studyInstanceUID: A.uid });
    expect(series.map((s) => value(s, '0020000E'))).toEqual([A.series[0].uid, A.series[1].uid]);
    expect(series.map((s) => value(s, '00201209'))).toEqual([3, 2]);
    expect(value(series[0], '0008103E')).toBe('Axial 3mm');
    expect(value(series[0], '00081190')).toBe(
      `${server.url}/dicomweb/studies/${A.uid}/series/${A.series[0].uid}`,
    );
    // Within one study, study attributes are not repeated.
    expect(series[0]['00100010']).toBeUndefined();
  });

  it('searches series across studies with the study attributes', async () => {
    const mr = await client.searchForSeries({ queryParams: { Modality: 'MR' } });
    expect(uids(mr, '0020000E')).toEqual([B.series[0].uid, D.series[0].uid].sort());
    expect(mr.map((s) => value(s, '00100010')).sort()).toEqual(['DOE^Jane', 'Müller^Jürgen']);
  });

  it('lists instances of a series, of a study, and across studies', async () => {
    const inSeries = await client.searchForInstances({
      studyInstanceUID: A.uid,
      seriesInstanceUID: A.series[0].uid,
    });
    expect(inSeries.map((i) => value(i, '00200013'))).toEqual([1, 2, 3]);
    expect(value(inSeries[0], '00280010')).toBe(4);
    expect(value(inSeries[0], '00081190')).toBe(
      `${server.url}/dicomweb/studies/${A.uid}/series/${A.series[0].uid}/instances/${A.series[0].uid}.1`,
    );
    const firstPage = await json(`/dicomweb/studies/${A.uid}/instances?limit=4`);
    const secondPage = await json(`/dicomweb/studies/${A.uid}/instances?limit=4&offset=4`);
    expect(firstPage.results.length + secondPage.results.length).toBe(5);
    const one = await client.searchForInstances({ queryParams: { SOPInstanceUID: `${B.series[0].uid}.2` } });
    expect(one).toHaveLength(1);
    expect(value(one[0], '00100010')).toBe('DOE^Jane');
    expect(value(one[0], '00080060')).toBe('MR');
  });

  it('matches attributes that have no column (the stored headers)', async () => {
    const thin = await json(`/dicomweb/studies/${C.uid}/instances?SliceThickness=2.5`);
    expect(thin.results).toHaveLength(1);
    const none = await json(`/dicomweb/studies/${C.uid}/instances?SliceThickness=3`);
    expect(none.results).toHaveLength(0);
    const byStudy = await json('/dicomweb/studies?00181000=60064'); // DeviceSerialNumber of the fixture CT
    expect(byStudy.results).toHaveLength(1);
  });
});

describe('protocol', () => {
  it('answers 404 for an unknown study or series, 200 [] for no match', async () => {
    expect((await request(server, '/dicomweb/studies/1.2.3/series')).status).toBe(404);
    expect((await request(server, `/dicomweb/studies/${A.uid}/series/1.2.3/instances`)).status).toBe(404);
    const empty = await request(server, '/dicomweb/studies?PatientID=none');
    expect(empty.status).toBe(200);
    expect(empty.json()).toEqual([]);
  });

  it('refuses bad parameters with a typed 400', async () => {
    for (const query of [
      'NoSuchKeyword=1',
      'StudyDate=2022',
      'StudyDate=20220101-20221231-1',
      '00400275.00400009=x',
      'limit=-1',
      'offset=abc',
      'fuzzymatching=maybe',
      `PatientName=${'x'.repeat(10_000)}`,
      'StudyInstanceUID=1.2.x',
      'PatientID=1&PatientID=2',
    ]) {
      const res = await request(server, `/dicomweb/studies?${query}`);
      expect(res.status, query).toBe(400);
      const body = res.json() as { error: string; message: string };
      expect(body.error).toBe('bad_request');
      expect(body.message).not.toMatch(/at .*\.ts/);
    }
  });

  it('treats SQL metacharacters as data', async () => {
    for (const hostile of ["'; DROP TABLE studies; --", "x' OR '1'='1", '%', '_', '\\', '[a]*']) {
      const res = await request(server, `/dicomweb/studies?PatientID=${encodeURIComponent(hostile)}`);
      expect(res.status, hostile).toBe(200);
      expect(res.json(), hostile).toEqual([]);
    }
    expect(await client.searchForStudies({ queryParams: { limit: 10 } })).toHaveLength(4);
  });

  it('negotiates JSON, refuses other types, compresses, and allows CORS', async () => {
    const plain = await request(server, '/dicomweb/studies?limit=1', {
      headers: { Accept: 'application/json' },
    });
    expect(plain.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await request(server, '/dicomweb/studies', { headers: { Accept: 'image/png' } })).status).toBe(
      406,
    );
    const gz = await request(server, '/dicomweb/studies?includefield=all', {
      headers: { 'Accept-Encoding': 'gzip' },
    });
    expect(gz.headers.get('content-encoding')).toBe('gzip');
    const preflight = await request(server, '/dicomweb/studies', {
      method: 'OPTIONS',
      headers: {
        Origin: 'http://viewer.example',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'authorization,accept',
      },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/);
    const exposed = (
      await request(server, '/dicomweb/studies', { headers: { Origin: 'http://viewer.example' } })
    ).headers.get('access-control-expose-headers');
    expect(exposed).toMatch(/Warning/);
    expect(exposed).toMatch(/Location/);
  });
});
