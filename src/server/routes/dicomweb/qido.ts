// QIDO-RS routes (PS3.18 §10.6) under /dicomweb: HTTP only — the Accept check, the query string
// as sent (repeated keys kept), the caller's study scope, and the Warning header of a cut result.
// Matching and result shaping live in dicomweb/qido.ts.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Catalog } from '../../../catalog/catalog.js';
import type { Level } from '../../../catalog/levels.js';
import { searchQido } from '../../../dicomweb/qido.js';
import { NotFound } from '../../../errors.js';
import { assertStudyAccess } from '../../dicomweb-auth.js';
import { accessOf, acceptsJson, dicomwebBase } from './common.js';

export interface QidoRouteOptions {
  catalog: Catalog;
  maxResults: number;
}

interface Params {
  study?: string;
  series?: string;
}

export function registerQidoRoutes(app: FastifyInstance, options: QidoRouteOptions): void {
  const search =
    (level: Level) => async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
      const type = acceptsJson(request);
      const access = accessOf(request);
      const { study, series } = request.params;
      if (study !== undefined) {
        assertStudyAccess(access, study);
        if (!(await options.catalog.exists(study, series))) {
          throw new NotFound(
            series === undefined ? `no study ${study}` : `no series ${series} in study ${study}`,
          );
        }
      }
      const rawUrl = request.raw.url ?? '';
      const q = rawUrl.indexOf('?');
      const params = q < 0 ? [] : [...new URLSearchParams(rawUrl.slice(q + 1)).entries()];
      const result = await searchQido(options.catalog, {
        level,
        studyUid: study,
        seriesUid: series,
        params,
        scope: access.studies,
        maxResults: options.maxResults,
        baseUrl: dicomwebBase(request),
      });
      if (result.truncated) {
        reply.header(
          'Warning',
          '299 MedStream "The number of results exceeded the maximum supported by the server. Additional results can be requested."',
        );
      }
      reply.header('Cache-Control', 'no-cache');
      return reply.type(type).send(JSON.stringify(result.body));
    };
  app.get('/dicomweb/studies', search('study'));
  app.get('/dicomweb/series', search('series'));
  app.get('/dicomweb/instances', search('instance'));
  app.get('/dicomweb/studies/:study/series', search('series'));
  app.get('/dicomweb/studies/:study/instances', search('instance'));
  app.get('/dicomweb/studies/:study/series/:series/instances', search('instance'));
}
