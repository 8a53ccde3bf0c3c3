// Heatmap jobs over a whole slide: the grid, the tiles skipped as background (checked against the
// tissue model's mask through its own route), each tissue cell's value equal to a direct
// inference on the same region, the map PNG, cancellation and bad requests.

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { rampColour } from '../../src/ai/heatmap-pyramid.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer, until } from '../support/server.js';
import { modelsDir, rednessModel } from './model-dir.js';

const SVS = 'svs/CMU-1-Small-Region.svs';
const MPP = 16;
const TILE = 8;

let server: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;

beforeAll(async () => {
  models = await modelsDir({ redness: rednessModel(TILE) });
  server = await startTestServer(fixture('wsi'), ['--models-dir', models.dir]);
});

afterAll(async () => {
  await server?.close();
  await models?.cleanup();
});

const post = (path: string, body: object) =>
  request(server, path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

interface Job {
  id: string;
  state: string;
  columns: number;
  rows: number;
  tiles: number;
  background: number;
  done: number;
  progress: number;
  values?: (number | null)[];
  map?: string;
  overlay?: Overlay;
}

interface Overlay {
  slide: string;
  x: number;
  y: number;
  width: number;
  height: number;
  cellPixels: number;
  legend: [number, string][];
  dzi: string;
  iiif: string;
}

describe('heatmap jobs', () => {
  it('maps the tissue tiles of a slide and skips the background', async () => {
    const started = await post(`/ai/models/redness/slides/${encodeURIComponent(SVS)}/heatmap`, {
      mpp: MPP,
      tileSize: TILE,
    });
    expect(started.status).toBe(202);
    const job = started.json() as Job;
    expect(started.headers.get('location')).toBe(`/ai/jobs/${job.id}`);
    const meta = (await request(server, `/slides/${encodeURIComponent(SVS)}`)).json() as {
      width: number;
      height: number;
      mpp_x: number;
      mpp_y: number;
    };
    const cells = (extent: number, mpp: number) => Math.floor(((extent * mpp) / MPP - TILE) / TILE) + 1;
    expect([job.columns, job.rows]).toEqual([cells(meta.width, meta.mpp_x), cells(meta.height, meta.mpp_y)]);

    let done: Job = job;
    await until(async () => {
      done = (await request(server, `/ai/jobs/${job.id}`)).json() as Job;
      return done.state !== 'queued' && done.state !== 'running';
    }, 60_000);
    expect(done.state).toBe('done');
    expect(done.progress).toBe(1);
    const values = done.values as (number | null)[];
    expect(values).toHaveLength(job.columns * job.rows);

    // Background cells: the tissue model's mask (through its own route) covers < 10 % of them.
    const tissue = (await post('/ai/models/tissue/infer', { slide: SVS, size: 1024 })).json() as {
      result: { mask: string; width: number; height: number };
    };
    const mask = await sharp((await request(server, tissue.result.mask)).body)
      .extractChannel(0)
      .raw()
      .toBuffer();
    const { width: mw, height: mh } = tissue.result;
    const sx = MPP / meta.mpp_x;
    const sy = MPP / meta.mpp_y;
    const tx = mw / meta.width;
    const ty = mh / meta.height;
    const expectedBackground = values.map((_, i) => {
      const x0 = (i % job.columns) * TILE * sx;
      const y0 = Math.floor(i / job.columns) * TILE * sy;
      const x1 = Math.floor(x0 * tx);
      const y1 = Math.floor(y0 * ty);
      const x2 = Math.min(mw, Math.max(x1 + 1, Math.ceil((x0 + TILE * sx) * tx)));
      const y2 = Math.min(mh, Math.max(y1 + 1, Math.ceil((y0 + TILE * sy) * ty)));
      let on = 0;
      for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) on += mask[y * mw + x] === 255 ? 1 : 0;
      return on / ((x2 - x1) * (y2 - y1)) < 0.1;
    });
    values.forEach((v, i) => expect(v === null, `cell ${i}`).toBe(expectedBackground[i]));
    expect(done.background).toBe(expectedBackground.filter(Boolean).length);
    expect(done.background).toBeGreaterThan(0);
    expect(done.done).toBe(done.tiles - done.background);

    // Three tissue cells equal a direct inference on the same region.
    const tissueCells = values.map((v, i) => (v === null ? -1 : i)).filter((i) => i >= 0);
    for (const i of [
      tissueCells[0],
      tissueCells[tissueCells.length >> 1],
      tissueCells[tissueCells.length - 1],
    ]) {
      const x = Math.round((i % job.columns) * TILE * sx);
      const y = Math.round(Math.floor(i / job.columns) * TILE * sy);
      const direct = (
        await post('/ai/models/redness/infer', { slide: SVS, x, y, width: TILE, height: TILE, mpp: MPP })
      ).json() as { scores: { label: string; score: number }[] };
      expect(values[i]).toBeCloseTo(direct.scores[1].score, 6);
    }

    // The map: one pixel per cell, round(255 * value), background 0.
    const map = await request(server, done.map as string);
    const { data, info } = await sharp(map.body)
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([job.columns, job.rows]);
    expect([...data]).toEqual(values.map((v) => (v === null ? 0 : Math.round(255 * v))));

    // The same map as a slide, served by the slide routes: each cell a cellPixels square of the
    // ramp's colour (background white), over level-0 [0, columns * TILE * sx) x [0, rows * TILE * sy).
    const overlay = done.overlay as Overlay;
    expect(overlay).toMatchObject({
      x: 0,
      y: 0,
      width: job.columns * TILE * sx,
      height: job.rows * TILE * sy,
    });
    expect(overlay.legend[0]).toEqual([0, '#2c7bb6']);
    const k = overlay.cellPixels;
    const id = encodeURIComponent(overlay.slide);
    const slide = (await request(server, `/slides/${id}`)).json() as { width: number; height: number };
    expect([slide.width, slide.height]).toEqual([job.columns * k, job.rows * k]);
    expect((await request(server, overlay.dzi)).body.toString()).toContain(
      `<Size Width="${job.columns * k}" Height="${job.rows * k}"/>`,
    );
    expect((await request(server, overlay.iiif)).status).toBe(200);
    const raw = await request(
      server,
      `/slides/${id}/region?x=0&y=0&width=${job.columns * k}&height=${job.rows * k}&level=0&format=raw`,
    );
    expect(raw.status).toBe(200);
    const centre = (c: number, r: number) => {
      const o = ((r * k + (k >> 1)) * job.columns * k + c * k + (k >> 1)) * 3;
      return [raw.body[o], raw.body[o + 1], raw.body[o + 2]];
    };
    values.forEach((v, i) =>
      expect(centre(i % job.columns, Math.floor(i / job.columns)), `cell ${i}`).toEqual(
        v === null ? [255, 255, 255] : rampColour(v),
      ),
    );
    // Derived slides never show up in a slide listing.
    expect((await request(server, '/slides')).body.toString()).not.toContain('_derived');
  });

  it('cancels a job and answers unknown jobs and bad requests with JSON errors', async () => {
    const started = (
      await post(`/ai/models/redness/slides/${encodeURIComponent(SVS)}/heatmap`, { mpp: 2, tileSize: TILE })
    ).json() as Job;
    const cancelled = await request(server, `/ai/jobs/${started.id}`, { method: 'DELETE' });
    // Queued: cancelled at once (200); running: it stops between tiles (202, cancelRequested).
    const answer = cancelled.json() as Job & { cancelRequested?: boolean };
    if (cancelled.status === 202) expect(answer.cancelRequested).toBe(true);
    else expect([cancelled.status, answer.state]).toEqual([200, 'cancelled']);
    await until(
      async () => ((await request(server, `/ai/jobs/${started.id}`)).json() as Job).state === 'cancelled',
      5000,
    );
    expect((await request(server, `/ai/jobs/${started.id}/map.png`)).status).toBe(404);
    expect((await request(server, '/ai/jobs/nope')).status).toBe(404);
    const bad: [object, number, string][] = [
      [{ mpp: -1, tileSize: 8 }, 400, 'bad_request'],
      [{ mpp: 1 }, 400, 'bad_request'],
      [{ mpp: 1, tileSize: 8, label: 'blue' }, 400, 'bad_request'],
      [{ mpp: 0.01, tileSize: 1 }, 400, 'bad_request'],
    ];
    for (const [body, status, code] of bad) {
      const res = await post(`/ai/models/redness/slides/${encodeURIComponent(SVS)}/heatmap`, body);
      expect([res.status, (res.json() as { error: string }).error], JSON.stringify(body)).toEqual([
        status,
        code,
      ]);
    }
    expect(
      (await post(`/ai/models/nope/slides/${encodeURIComponent(SVS)}/heatmap`, { mpp: 1, tileSize: 8 }))
        .status,
    ).toBe(404);
    expect(
      (await post('/ai/models/redness/slides/missing.svs/heatmap', { mpp: 1, tileSize: 8 })).status,
    ).toBe(404);
  });
});
