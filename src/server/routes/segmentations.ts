// Segmentation jobs over HTTP (docs/segmentation.md, "Segmentation API"):
//   POST   /segmentations                   JSON request -> 202 {id, state, ...} + Location
//                                           (200 with the result when an identical job is done)
//   GET    /segmentations/{id}              state, progress, timings, error, result links
//   GET    /segmentations/{id}/mask.nii.gz  the mask (NIfTI, source geometry)
//   GET    /segmentations/{id}/seg.dcm      the binary DICOM SEG
//   DELETE /segmentations/{id}              cancels a queued or running job
// Guarded by DICOMweb tokens when auth is on: a study-scoped token reaches only its studies' jobs,
// and storing the SEG into the study needs a write token.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AccessDenied, Conflict, NotFound } from '../../errors.js';
import type { JobRecord } from '../../jobs/queue.js';
import type { SegmentationPayload, SegmentationService, SegmentationSummary } from '../../segment/service.js';
import { parseSegmentationRequest } from '../../segment/service-request.js';
import { assertStudyAccess } from '../dicomweb-auth.js';
import { accessOf } from './dicomweb/common.js';

type Job = JobRecord<SegmentationPayload, SegmentationSummary>;

const FILES: Record<string, string> = {
  'mask.nii.gz': 'application/gzip',
  'seg.dcm': 'application/dicom',
};

/** The JSON a client sees of a job (no storage keys). */
function view(job: Job) {
  const r = job.payload.request;
  const base = `/segmentations/${job.id}`;
  const seconds = (a?: number, b?: number) =>
    a === undefined || b === undefined ? undefined : Number(((b - a) / 1000).toFixed(3));
  return {
    id: job.id,
    state: job.state,
    request: {
      series: job.payload.seriesUid,
      volume: r.volume,
      study: job.payload.studyUid,
      slice: r.slice,
      instance: r.instance,
      box: [r.box.x0, r.box.y0, r.box.x1, r.box.y1],
      window: r.window,
      engine: r.engine,
      label: r.label,
      color: r.color,
      store: r.store,
    },
    progress: job.progress,
    cancelRequested: job.cancelRequested,
    attempts: job.attempts,
    worker: job.worker,
    timings: {
      createdAt: new Date(job.createdAt).toISOString(),
      startedAt: job.startedAt === undefined ? undefined : new Date(job.startedAt).toISOString(),
      finishedAt: job.finishedAt === undefined ? undefined : new Date(job.finishedAt).toISOString(),
      expiresAt: job.expiresAt === undefined ? undefined : new Date(job.expiresAt).toISOString(),
      queuedSeconds: seconds(job.createdAt, job.startedAt),
      runSeconds: seconds(job.startedAt, job.finishedAt),
      ...job.summary?.timings,
    },
    error: job.error,
    result:
      job.state === 'done' && job.summary
        ? {
            ...job.summary,
            timings: undefined,
            files: Object.fromEntries(job.files.map((name) => [name, `${base}/${name}`])),
          }
        : undefined,
  };
}

export function registerSegmentationRoutes(app: FastifyInstance, service: SegmentationService): void {
  const jobOf = async (request: FastifyRequest<{ Params: { id: string } }>): Promise<Job> => {
    const job = await service.queue.get(request.params.id);
    if (!job) throw new NotFound(`no segmentation job ${request.params.id} (unknown, or expired)`);
    assertStudyAccess(accessOf(request), job.payload.studyUid);
    return job;
  };
  const reply202 = (reply: FastifyReply, job: Job, status: number) =>
    reply
      .code(status)
      .header('Location', `/segmentations/${job.id}`)
      .header('Cache-Control', 'no-store')
      .send(view(job));

  app.post<{ Body: unknown }>('/segmentations', { bodyLimit: 64 * 1024 }, async (request, reply) => {
    const parsed = parseSegmentationRequest(request.body, service.engineNames);
    const access = accessOf(request);
    if (parsed.store && !access.write)
      throw new AccessDenied('storing the SEG into the study needs a write token (or send "store": false)');
    const payload = await service.resolve(parsed);
    assertStudyAccess(access, payload.studyUid);
    const { job, created } = await service.submit(payload);
    reply.header('X-Job-Created', String(created));
    return reply202(reply, job, job.state === 'done' ? 200 : 202);
  });

  app.get<{ Params: { id: string } }>('/segmentations/:id', async (request, reply) => {
    reply.header('Cache-Control', 'no-store');
    return view(await jobOf(request));
  });

  app.get<{ Params: { id: string; file: string } }>('/segmentations/:id/:file', async (request, reply) => {
    const type = FILES[request.params.file];
    if (!type) throw new NotFound(`no file ${request.params.file}; a job has mask.nii.gz and seg.dcm`);
    const job = await jobOf(request);
    if (job.state !== 'done')
      throw new Conflict(`segmentation ${job.id} is ${job.state}: it has no ${request.params.file}`);
    if (!job.files.includes(request.params.file))
      throw new NotFound(`segmentation ${job.id} has no ${request.params.file}: ${job.summary?.noSeg ?? ''}`);
    const bytes = await service.queue.file(job.id, request.params.file);
    if (!bytes) throw new NotFound(`the ${request.params.file} of segmentation ${job.id} has expired`);
    return reply
      .type(type)
      .header('Cache-Control', 'private, max-age=60')
      .header('Content-Disposition', `attachment; filename="${job.id}-${request.params.file}"`)
      .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  app.delete<{ Params: { id: string } }>('/segmentations/:id', async (request, reply) => {
    const job = await jobOf(request);
    const after = (await service.queue.cancel(job.id)) ?? job;
    return reply202(reply, after, after.state === 'running' ? 202 : 200);
  });
}
