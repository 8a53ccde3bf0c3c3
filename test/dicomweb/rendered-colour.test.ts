// Rendered colour instances: one RGB image stored natively (planar configuration 0 and 1), as
// YBR_FULL and YBR_FULL_422 (made with pydicom's colour conversion), RLE (dcmcrle) and JPEG
// baseline (dcmcjpeg, YBR_FULL_422) and JPEG-LS (dcmcjpls): each rendered PNG equals the RGB it was made from (exactly,
// or within the rounding of the colour transform; lossy JPEG within a mean tolerance).

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { WRITE_COLOUR_PY } from '../support/native-series.js';
import { request, startIndexedServer } from '../support/server.js';
import { python } from '../volumes/python.js';

const STUDY = '1.2.826.0.1.3680043.8.498.4343';
const W = 32;
const H = 24;
/** name -> [photometric, planar configuration], and the tool that makes it from the RGB native file. */
const CASES = {
  'rgb-interleaved': { tolerance: 0 },
  'rgb-planar': { tolerance: 0 },
  'ybr-full': { tolerance: 2 },
  'ybr-full-422': { tolerance: 2 },
  rle: { tolerance: 0 },
  jpeg: { tolerance: -4 }, // mean absolute difference
  'jpeg-ls': { tolerance: 0 },
} as const;
let dir: string;
let server: RunningServer;
let rgb: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'colour-'));
  const store = path.join(dir, 'store');
  await mkdir(store);
  const out = python<{ rgb: string }>(
    `import base64, json, sys, numpy as np, pydicom
from pydicom.pixel_data_handlers.util import convert_color_space
${WRITE_COLOUR_PY}out, W, H = sys.argv[1], ${W}, ${H}
y, x = np.mgrid[0:H, 0:W]
rgb = np.stack([x * 7 + 10, y * 9 + 5, 200 - x * 2 - y * 3], axis=-1).astype('u1')
# Chroma constant across each pixel pair, so YBR_FULL_422 loses nothing.
ybr = convert_color_space(rgb, 'RGB', 'YBR_FULL')
ybr[:, 1::2, 1:] = ybr[:, 0::2, 1:]
rgb = convert_color_space(ybr, 'YBR_FULL', 'RGB')
def write(name, k, photometric, planar, data):
    write_colour(f'{out}/{name}.dcm', '${STUDY}', k, H, W, photometric, planar, data)
write('rgb-interleaved', 1, 'RGB', 0, rgb.tobytes())
write('rgb-planar', 2, 'RGB', 1, rgb.transpose(2, 0, 1).tobytes())
write('ybr-full', 3, 'YBR_FULL', 0, ybr.tobytes())
pairs = np.stack([ybr[:, 0::2, 0], ybr[:, 1::2, 0], ybr[:, 0::2, 1], ybr[:, 0::2, 2]], axis=-1)
write('ybr-full-422', 4, 'YBR_FULL_422', 0, pairs.astype('u1').tobytes())
write('rle-source', 5, 'RGB', 0, rgb.tobytes())
write('jpeg-source', 6, 'RGB', 0, rgb.tobytes())
write('jpeg-ls-source', 7, 'RGB', 0, rgb.tobytes())
print(json.dumps({"rgb": base64.b64encode(rgb.tobytes()).decode()}))`,
    [store],
  );
  rgb = Buffer.from(out.rgb, 'base64');
  execFileSync('dcmcrle', [path.join(store, 'rle-source.dcm'), path.join(store, 'rle.dcm')]);
  execFileSync('dcmcjpeg', ['+eb', '+un', path.join(store, 'jpeg-source.dcm'), path.join(store, 'jpeg.dcm')]);
  execFileSync('dcmcjpls', [path.join(store, 'jpeg-ls-source.dcm'), path.join(store, 'jpeg-ls.dcm')]);
  await rm(path.join(store, 'jpeg-ls-source.dcm'));
  await rm(path.join(store, 'rle-source.dcm'));
  await rm(path.join(store, 'jpeg-source.dcm'));
  server = await startIndexedServer(store);
});

afterAll(async () => {
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('rendered colour instances', () => {
  const names = Object.keys(CASES) as Array<keyof typeof CASES>;
  for (const [i, name] of names.entries()) {
    it(name, async () => {
      const k = i + 1;
      const url = `/dicomweb/studies/${STUDY}/series/${STUDY}.${k}/instances/${STUDY}.${k}.1`;
      const res = await request(server, `${url}/rendered`, { headers: { Accept: 'image/png' } });
      expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
      expect(res.headers.get('content-type')).toBe('image/png');
      const { data, info } = await sharp(res.body).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height, info.channels]).toEqual([W, H, 3]);
      let max = 0;
      let sum = 0;
      for (let p = 0; p < data.length; p++) {
        const d = Math.abs(data[p] - rgb[p]);
        max = Math.max(max, d);
        sum += d;
      }
      const tolerance = CASES[name].tolerance;
      if (tolerance >= 0) expect(max).toBeLessThanOrEqual(tolerance);
      else expect(sum / data.length).toBeLessThanOrEqual(-tolerance);
      // A thumbnail of the same instance is a JPEG in colour.
      const thumb = await request(server, `${url}/thumbnail`);
      expect((await sharp(thumb.body).metadata()).channels).toBe(3);
    });
  }

  it('renders a study and a series as one image per instance (multipart/related)', async () => {
    const study = await request(server, `/dicomweb/studies/${STUDY}/rendered`, {
      headers: { Accept: 'image/png' },
    });
    expect(study.status).toBe(200);
    const type = study.headers.get('content-type')!;
    expect(type).toMatch(/^multipart\/related; type="image\/png"; boundary=/);
    const boundary = /boundary=(\S+)/.exec(type)![1];
    const parts = study.body
      .toString('latin1')
      .split(`--${boundary}`)
      .slice(1, -1)
      .map((p) => Buffer.from(p.slice(p.indexOf('\r\n\r\n') + 4, -2), 'latin1'));
    expect(parts).toHaveLength(Object.keys(CASES).length);
    for (const part of parts) expect((await sharp(part).metadata()).width).toBe(W);
    expect(study.body.toString('latin1')).toContain(
      `Content-Location: ${server.url}/dicomweb/studies/${STUDY}/series/${STUDY}.1/instances/${STUDY}.1.1/rendered`,
    );
    const series = await request(server, `/dicomweb/studies/${STUDY}/series/${STUDY}.2/rendered`);
    expect(series.status).toBe(200);
    expect(series.headers.get('content-type')).toMatch(/type="image\/jpeg"/);
    expect((await request(server, `/dicomweb/studies/${STUDY}/series/1.2.3/rendered`)).status).toBe(404);
  });
});
