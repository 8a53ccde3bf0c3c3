// Model serving over HTTP:
//   GET  /ai/models                 the served models with their declarations (+ built-in `tissue`)
//   GET  /ai/models/{name}          one of them
//   POST /ai/models/{name}/infer    body: a PNG/JPEG (Content-Type image/png | image/jpeg), or JSON
//                                   {slide, x, y, width, height, level | mpp} (a region) or
//                                   {slide, size} (the whole slide as a thumbnail, longer side `size`)
//                                   {study, series, instance?, frame?, window?} (radiology, catalog)
//   GET  /ai/results/{id}.png       a mask or heat map an inference made
//   GET  /ai/results/{id}/slices/{k}.png, {id}.nii.gz, {id}.dcm?class=K   a series result
//   GET  /ai/results/{id}.json      what a series result is (the radiology viewer's AI overlay)
//   GET  /ai/results/{id}.raw       a series result's voxels, one byte each (gzip when accepted)
//                                   results never change: each has an ETag, 304 on If-None-Match
//   POST /ai/models/{name}/slides/{id}/heatmap   {mpp, tileSize, stride?, label?, minTissue?}
//                                   -> 202 a job over the slide's tissue tiles (heatmap-jobs.ts)
//   GET  /ai/jobs/{id}              its progress, and when done its grid and map
//   GET  /ai/jobs/{id}/map.png      the grid as a PNG, one pixel per cell
//   DELETE /ai/jobs/{id}            cancels it (202 while it stops, 200 once final)
// A client that hangs up leaves the model's queue (its slide reads are cancelled too).
// With auth on (auth.ts, docs/ai.md "Access"), radiology inference and its results need access to
// the study (a DICOMweb token scoped to it, or a signed URL with `study=`); a DICOMweb token
// reaches nothing else here but the model list.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { HeatmapJob } from '../../ai/heatmap-jobs.js';
import type { AiService, InferSource } from '../../ai/service.js';
import { AccessDenied, BadRequest } from '../../errors.js';
import { clientAbortSignal } from '../abort.js';
import { byDicomwebToken } from '../auth.js';
import { assertStudyAccess } from '../dicomweb-auth.js';
import { matchesEtag } from '../image-reply.js';
import { accessOf } from './dicomweb/common.js';

export interface AiRouteOptions {
  /** Largest uploaded image, in bytes. */
  maxUploadBytes: number;
}

const DEFAULT_THUMBNAIL = 1024;

/** 403 for a DICOMweb token on a route of slides or uploads: such a token reaches studies only. */
function assertNotByToken(request: FastifyRequest, what: string): void {
  if (byDicomwebToken(request))
    throw new AccessDenied(`a DICOMweb token reaches studies only, not ${what}: sign the URL instead`);
}

/**
 * Sets the ETag of one representation of a result and says whether the client holds it (If-None-Match).
 * A result never changes and every replica writes the same bytes for it, so the tag names the
 * result and the representation (`W/` where the compress plugin may gzip it).
 */
function holdsResult(request: FastifyRequest, reply: FastifyReply, etag: string): boolean {
  reply.header('ETag', etag);
  return matchesEtag(request.headers['if-none-match'], etag);
}

/** 403 unless the request may read the study a result was made from (slide and image results: signed URLs only). */
async function assertResultAccess(request: FastifyRequest, ai: AiService, id: string): Promise<void> {
  const study = await ai.resultStudy(id);
  if (study === undefined) assertNotByToken(request, 'results of slides or images');
  else assertStudyAccess(accessOf(request), study);
}

export async function registerAiRoutes(
  app: FastifyInstance,
  ai: AiService,
  options: AiRouteOptions,
): Promise<void> {
  await app.register(async (scope) => {
    // Image bodies only on these routes; the content-type parser stays inside this scope.
    scope.addContentTypeParser(
      ['image/png', 'image/jpeg'],
      { parseAs: 'buffer', bodyLimit: options.maxUploadBytes },
      (_request, body, done) => done(null, body),
    );

    scope.get('/ai/models', async () => ({ models: ai.list() }));
    scope.get<{ Params: { name: string } }>('/ai/models/:name', async (request) =>
      ai.info(request.params.name),
    );

    scope.post<{ Params: { name: string }; Body: unknown }>(
      '/ai/models/:name/infer',
      { bodyLimit: options.maxUploadBytes },
      async (request, reply) => {
        const signal = clientAbortSignal(reply);
        const source = parseSource(request.body);
        if (source.kind === 'dicom') assertStudyAccess(accessOf(request), source.study);
        else assertNotByToken(request, 'slides or uploaded images');
        const result = await ai.infer(request.params.name, source, signal);
        reply.header('Cache-Control', 'no-store');
        return result;
      },
    );

    scope.post<{ Params: { name: string; id: string }; Body: unknown }>(
      '/ai/models/:name/slides/:id/heatmap',
      async (request, reply) => {
        assertNotByToken(request, 'slide heat maps');
        const b = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as Record<
          string,
          unknown
        >;
        const positive = (key: string, fallback?: number, integer = false): number => {
          const v = b[key] ?? fallback;
          if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v)))
            throw new BadRequest(
              `${key} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(v)}`,
            );
          return v;
        };
        const tileSize = positive('tileSize', undefined, true);
        if (tileSize > 4096) throw new BadRequest('tileSize must be at most 4096');
        const minTissue = b.minTissue ?? 0.1;
        if (typeof minTissue !== 'number' || !(minTissue >= 0 && minTissue <= 1))
          throw new BadRequest('minTissue must be a number in 0..1');
        if (b.label !== undefined && typeof b.label !== 'string')
          throw new BadRequest('label must be a string');
        const job = await ai.heatmaps.start({
          model: request.params.name,
          slide: request.params.id,
          mpp: positive('mpp'),
          tileSize,
          stride: positive('stride', tileSize, true),
          label: b.label as string | undefined,
          minTissue,
        });
        reply.code(202).header('Location', `/ai/jobs/${job.id}`);
        return jobJson(job);
      },
    );
    scope.get<{ Params: { id: string } }>('/ai/jobs/:id', async (request) => {
      assertNotByToken(request, 'slide heat maps');
      return jobJson(await ai.heatmaps.get(request.params.id));
    });
    scope.get<{ Params: { id: string } }>('/ai/jobs/:id/map.png', async (request, reply) => {
      assertNotByToken(request, 'slide heat maps');
      reply.header('Cache-Control', 'private, max-age=3600');
      return reply.type('image/png').send(await ai.heatmaps.mapPng(request.params.id));
    });
    scope.delete<{ Params: { id: string } }>('/ai/jobs/:id', async (request, reply) => {
      assertNotByToken(request, 'slide heat maps');
      const job = await ai.heatmaps.cancel(request.params.id);
      // 202: a running job stops between tiles (cancelRequested); 200: it is final.
      if (job.state === 'queued' || job.state === 'running') reply.code(202);
      return jobJson(job);
    });

    scope.get<{ Params: { file: string }; Querystring: { class?: string } }>(
      '/ai/results/:file',
      async (request, reply) => {
        const m = /^([0-9a-f-]{36})\.(png|nii\.gz|dcm|json|raw)$/.exec(request.params.file);
        if (!m)
          throw new BadRequest('result ids look like /ai/results/<uuid>.png (or .nii.gz, .dcm, .json, .raw)');
        const id = m[1];
        // 404 for an unknown or expired result: never a 304 for one that is gone.
        await assertResultAccess(request, ai, id);
        reply.header('Cache-Control', 'private, max-age=3600');
        if (m[2] === 'json') {
          if (holdsResult(request, reply, `W/"${id}.json"`)) return reply.code(304).send();
          return ai.resultInfo(id);
        }
        if (m[2] === 'png') {
          if (holdsResult(request, reply, `"${id}.png"`)) return reply.code(304).send();
          return reply.type('image/png').send(await ai.result(id));
        }
        if (m[2] === 'raw') {
          reply.type('application/octet-stream').header('Vary', 'Accept-Encoding');
          // Masks and maps shrink many times (the compress plugin leaves binary types alone);
          // the gzip is made once per result and kept with it.
          const gzipped = /\bgzip\b/.test(String(request.headers['accept-encoding'] ?? ''));
          if (holdsResult(request, reply, gzipped ? `"${id}.raw.gz"` : `"${id}.raw"`))
            return reply.code(304).send();
          if (!gzipped) {
            const voxels = await ai.resultVoxels(id);
            return reply.send(Buffer.from(voxels.buffer, voxels.byteOffset, voxels.length));
          }
          return reply.header('Content-Encoding', 'gzip').send(await ai.resultVoxelsGzip(id));
        }
        if (m[2] === 'nii.gz') {
          if (holdsResult(request, reply, `"${id}.nii.gz"`)) return reply.code(304).send();
          return reply
            .type('application/gzip')
            .header('Content-Disposition', `attachment; filename="${id}.nii.gz"`)
            .send(Buffer.from(await ai.resultNifti(id)));
        }
        const k = request.query.class === undefined ? 1 : Number(request.query.class);
        if (!Number.isInteger(k) || k < 1 || k > 255)
          throw new BadRequest('class must be an integer in 1..255 (a class index of the mask)');
        if (holdsResult(request, reply, `"${id}.dcm.${k}"`)) return reply.code(304).send();
        return reply.type('application/dicom').send(Buffer.from(await ai.resultSeg(id, k)));
      },
    );
    scope.get<{ Params: { id: string; file: string } }>(
      '/ai/results/:id/slices/:file',
      async (request, reply) => {
        const m = /^(\d{1,6})\.png$/.exec(request.params.file);
        if (!/^[0-9a-f-]{36}$/.test(request.params.id) || !m)
          throw new BadRequest('slices of a result look like /ai/results/<uuid>/slices/<k>.png');
        await assertResultAccess(request, ai, request.params.id);
        reply.header('Cache-Control', 'private, max-age=3600');
        if (holdsResult(request, reply, `"${request.params.id}.slice.${Number(m[1])}"`))
          return reply.code(304).send();
        return reply.type('image/png').send(await ai.resultSlice(request.params.id, Number(m[1])));
      },
    );
  });
}

function jobJson(job: HeatmapJob): Record<string, unknown> {
  const { values, overlay, ...rest } = job;
  const id = overlay ? encodeURIComponent(overlay.slide) : '';
  return {
    ...rest,
    progress: job.tiles - job.background === 0 ? 1 : job.done / (job.tiles - job.background),
    ...(job.state === 'done' ? { values, map: `/ai/jobs/${job.id}/map.png` } : {}),
    // The map as a slide: the same routes as any slide serve it.
    ...(job.state === 'done' && overlay
      ? {
          overlay: {
            ...overlay,
            dzi: `/slides/${id}/dzi`,
            iiif: `/iiif/3/${id}/info.json`,
            tiles: `/tiles/${id}/{level}/{x}/{y}.png`,
          },
        }
      : {}),
  };
}

function parseSource(body: unknown): InferSource {
  if (Buffer.isBuffer(body)) return { kind: 'image', bytes: body };
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BadRequest(
      'send a PNG or JPEG (Content-Type image/png or image/jpeg) or a JSON object naming a slide',
    );
  const b = body as Record<string, unknown>;
  if (b.study !== undefined) return parseDicomSource(b);
  if (typeof b.slide !== 'string' || b.slide === '') throw new BadRequest('slide must be a slide id');
  const int = (key: string, min: number): number => {
    const v = b[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2 ** 31)
      throw new BadRequest(`${key} must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
    return v;
  };
  const hasRect = ['x', 'y', 'width', 'height'].some((k) => b[k] !== undefined);
  if (!hasRect) {
    if (b.level !== undefined || b.mpp !== undefined)
      throw new BadRequest('level and mpp need a rectangle (x, y, width, height)');
    return {
      kind: 'slide',
      slide: b.slide,
      size: b.size === undefined ? DEFAULT_THUMBNAIL : int('size', 16),
    };
  }
  if (b.level !== undefined && b.mpp !== undefined)
    throw new BadRequest('give either level or mpp, not both');
  if (b.mpp !== undefined && !(typeof b.mpp === 'number' && b.mpp > 0 && Number.isFinite(b.mpp)))
    throw new BadRequest(`mpp must be a positive number, got ${JSON.stringify(b.mpp)}`);
  if (b.size !== undefined && b.size !== null)
    throw new BadRequest('size applies to a whole slide, not a region');
  return {
    kind: 'region',
    slide: b.slide,
    x: int('x', -(2 ** 31)),
    y: int('y', -(2 ** 31)),
    width: int('width', 1),
    height: int('height', 1),
    level: b.level === undefined ? undefined : int('level', 0),
    mpp: b.mpp as number | undefined,
  };
}

const UID = /^[0-9]+(\.[0-9]+)*$/;

/** {study, series, instance?, frame?, window?}: radiology data the catalog holds. */
function parseDicomSource(b: Record<string, unknown>): InferSource {
  const uid = (key: string, optional = false): string | undefined => {
    const v = b[key];
    if (v === undefined && optional) return undefined;
    if (typeof v !== 'string' || v.length > 64 || !UID.test(v))
      throw new BadRequest(`${key} must be a DICOM UID, got ${JSON.stringify(v)?.slice(0, 80)}`);
    return v;
  };
  const study = uid('study') as string;
  const series = uid('series') as string;
  const instance = uid('instance', true);
  if (b.slide !== undefined) throw new BadRequest('give either a slide or a study, not both');
  let frame: number | undefined;
  if (b.frame !== undefined) {
    if (instance === undefined) throw new BadRequest('frame needs an instance');
    if (typeof b.frame !== 'number' || !Number.isInteger(b.frame) || b.frame < 1 || b.frame > 2 ** 31)
      throw new BadRequest(
        `frame must be an integer ≥ 1 (frames count from 1), got ${JSON.stringify(b.frame)}`,
      );
    frame = b.frame;
  }
  let window: { center: number; width: number } | undefined;
  if (b.window !== undefined) {
    const w = b.window as Record<string, unknown> | null;
    const center = w?.center;
    const width = w?.width;
    if (
      typeof center !== 'number' ||
      typeof width !== 'number' ||
      !Number.isFinite(center) ||
      !Number.isFinite(width) ||
      !(width > 0)
    )
      throw new BadRequest('window must be {"center": number, "width": number > 0}');
    window = { center, width };
  }
  return { kind: 'dicom', study, series, instance, frame, window };
}
