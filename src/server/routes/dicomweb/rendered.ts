// WADO-RS rendered resources (PS3.18 §10.4.1.1.3): rendered instances and frames, rendered
// studies and series (every instance's first frame, one part each), and thumbnails (a series' is
// its middle instance's, a study's that of its first series). HTTP only: rendering is
// dicomweb/rendered.ts.

import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Catalog, StoredInstance } from '../../../catalog/catalog.js';
import { parseFrameList } from '../../../dicomweb/frames.js';
import { instanceUrl } from '../../../dicomweb/metadata.js';
import { renderFrame, renderOptions } from '../../../dicomweb/rendered.js';
import { BadRequest, NotFound } from '../../../errors.js';
import { mapConcurrent } from '../../../storage/tree-listing.js';
import type { FrameSampleDecoder } from '../../../volumes/frame-samples.js';
import { clientAbortSignal } from '../../abort.js';
import { assertStudyAccess } from '../../dicomweb-auth.js';
import { accessOf, dicomwebBase } from './common.js';
import { multipartBody } from './multipart-body.js';

/** Instances rendered in one study or series answer at most. */
const MAX_RENDERED_INSTANCES = 1000;

interface Params {
  study: string;
  series?: string;
  instance?: string;
  frames?: string;
}

export interface RenderedRouteOptions {
  catalog: Catalog;
  /** The instance a URL names, checked against its study and series (404 otherwise). */
  instanceOf: (request: FastifyRequest<{ Params: Params }>) => Promise<StoredInstance>;
  /** The stored bytes of frames (1-based) of an instance. */
  readFrames: (instance: StoredInstance, numbers: number[], signal: AbortSignal) => Promise<Uint8Array[]>;
  decoder: () => FrameSampleDecoder;
}

export function registerRenderedRoutes(app: FastifyInstance, routeOptions: RenderedRouteOptions): void {
  const { catalog, instanceOf, readFrames, decoder } = routeOptions;
  /** The render parameters of a request (thumbnails: 128x128 at most unless asked). */
  const optionsOf = (request: FastifyRequest<{ Params: Params }>, thumbnail: boolean) =>
    renderOptions(
      request.query as Record<string, string | undefined>,
      request.headers.accept,
      thumbnail ? { viewport: { width: 128, height: 128 } } : {},
    );

  /** Renders frame `n` of an instance (rendered and thumbnail routes). */
  const render = async (
    request: FastifyRequest<{ Params: Params }>,
    reply: FastifyReply,
    instance: StoredInstance,
    n: number,
    thumbnail: boolean,
  ) => {
    const options = optionsOf(request, thumbnail);
    const signal = clientAbortSignal(reply);
    const [frame] = await readFrames(instance, [n], signal);
    const image = await renderFrame(decoder(), instance, frame, options, signal);
    return reply.header('Cache-Control', 'private, max-age=3600').type(options.type).send(image);
  };

  /**
   * Rendered study or series (PS3.18 §10.4.1.1.3): the first frame of every instance rendered,
   * one part each in a multipart/related body, in series and instance order.
   */
  const renderAll = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { study, series } = request.params;
    assertStudyAccess(accessOf(request), study);
    const options = optionsOf(request, false);
    const instances = (await catalog.instancesOf(study, series)).filter(
      (i) => series === undefined || i.seriesUid === series,
    );
    if (instances.length === 0)
      throw new NotFound(
        series === undefined ? `no study ${study}` : `no series ${series} in study ${study}`,
      );
    if (instances.length > MAX_RENDERED_INSTANCES) {
      throw new BadRequest(
        `${instances.length} instances: at most ${MAX_RENDERED_INSTANCES} are rendered in one answer; ask per series or instance`,
      );
    }
    const signal = clientAbortSignal(reply);
    // A few at a time: a large series must not fill the bounded decoder queue alone.
    const images = await mapConcurrent(instances, 4, async (instance) => {
      const [frame] = await readFrames(instance, [1], signal);
      return renderFrame(decoder(), instance, frame, options, signal);
    });
    const boundary = `medstream-${randomBytes(12).toString('hex')}`;
    const base = dicomwebBase(request);
    const body = multipartBody(
      images.map((image, i) => ({
        headers: {
          'Content-Type': options.type,
          'Content-Location': `${instanceUrl(base, instances[i])}/rendered`,
        },
        body: image,
      })),
      boundary,
    );
    return reply
      .header('Cache-Control', 'private, max-age=3600')
      .type(`multipart/related; type="${options.type}"; boundary=${boundary}`)
      .send(body);
  };
  app.get('/dicomweb/studies/:study/rendered', renderAll);
  app.get('/dicomweb/studies/:study/series/:series/rendered', renderAll);

  app.get<{ Params: Params }>(
    '/dicomweb/studies/:study/series/:series/instances/:instance/rendered',
    async (request, reply) => render(request, reply, await instanceOf(request), 1, false),
  );
  app.get<{ Params: Params }>(
    '/dicomweb/studies/:study/series/:series/instances/:instance/frames/:frames/rendered',
    async (request, reply) => {
      const numbers = parseFrameList(request.params.frames!);
      if (numbers.length !== 1) throw new BadRequest('a rendered frame is one frame');
      return render(request, reply, await instanceOf(request), numbers[0], false);
    },
  );
  app.get<{ Params: Params }>(
    '/dicomweb/studies/:study/series/:series/instances/:instance/thumbnail',
    async (request, reply) => render(request, reply, await instanceOf(request), 1, true),
  );
  /** A series' thumbnail is its middle instance's; a study's, its first series'. */
  const thumbnailOf = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { study, series } = request.params;
    assertStudyAccess(accessOf(request), study);
    const instances = await catalog.instancesOf(study, series);
    const first = instances.filter((i) => i.seriesUid === (series ?? instances[0]?.seriesUid));
    if (first.length === 0)
      throw new NotFound(
        series === undefined ? `no study ${study}` : `no series ${series} in study ${study}`,
      );
    return render(request, reply, first[Math.floor(first.length / 2)], 1, true);
  };
  app.get('/dicomweb/studies/:study/series/:series/thumbnail', thumbnailOf);
  app.get('/dicomweb/studies/:study/thumbnail', thumbnailOf);
}
