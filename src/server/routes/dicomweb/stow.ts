// STOW-RS routes (PS3.18 §10.5): POST /dicomweb/studies and /dicomweb/studies/{study} with
// multipart/related; type="application/dicom". The body is handed to dicomweb/stow.ts as a
// stream (no body limit or buffering here: the service bounds each instance). Needs a token
// with write access when auth is on; a study-scoped token may only store into its studies.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { StowService, type StowOptions } from '../../../dicomweb/stow.js';
import { AccessDenied } from '../../../errors.js';
import { assertStudyAccess } from '../../dicomweb-auth.js';
import { accessOf, acceptsJson, dicomwebBase } from './common.js';

export function registerStowRoutes(app: FastifyInstance, options: StowOptions): void {
  const service = new StowService(options);
  app.addContentTypeParser('multipart/related', (_request, payload, done) => done(null, payload));
  const store = async (request: FastifyRequest<{ Params: { study?: string } }>, reply: FastifyReply) => {
    const type = acceptsJson(request);
    const access = accessOf(request);
    if (!access.write)
      throw new AccessDenied('the token does not allow storing (STOW-RS needs a write token)');
    const study = request.params.study;
    if (study !== undefined) assertStudyAccess(access, study);
    else if (access.studies !== undefined) {
      throw new AccessDenied('a study-scoped token stores only through POST /dicomweb/studies/{study}');
    }
    const abort = new AbortController();
    request.raw.once('close', () => {
      if (!request.raw.complete) abort.abort();
    });
    const result = await service.store(request.raw, request.headers['content-type'], {
      studyUid: study,
      baseUrl: dicomwebBase(request),
      signal: abort.signal,
    });
    if (study !== undefined) reply.header('Location', `${dicomwebBase(request)}/studies/${study}`);
    return reply.code(result.status).type(type).send(JSON.stringify(result.body));
  };
  app.post('/dicomweb/studies', store);
  app.post('/dicomweb/studies/:study', store);
}
