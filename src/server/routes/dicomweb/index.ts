// The DICOMweb service under /dicomweb: checks the access token of every request when auth is
// on (Bearer header or ?token=, dicomweb-auth.ts) and registers the QIDO-RS, WADO-RS and STOW-RS routes.

import type { FastifyInstance } from 'fastify';
import type { Catalog } from '../../../catalog/catalog.js';
import { AuthError } from '../../../errors.js';
import { isDicomwebUrl } from '../../auth.js';
import { tokenOfRequest, verifyDicomwebToken } from '../../dicomweb-auth.js';
import { setAccess } from './common.js';
import { registerQidoRoutes } from './qido.js';
import type { StowOptions } from '../../../dicomweb/stow.js';
import { registerStowRoutes } from './stow.js';
import { registerWadoRoutes } from './wado.js';
import type { ByteSource } from '../../../storage/types.js';
import type { NiftiSliceReader } from '../../../volumes/nifti-slices.js';
import type { FrameSampleDecoderOptions } from '../../../volumes/frame-samples.js';
import type { DerivedFrames } from '../../../dicomweb/derived.js';

export interface DicomwebOptions {
  catalog: Catalog;
  qidoMaxResults: number;
  stow: Omit<StowOptions, 'catalog'>;
  /** Wraps a source with the block cache (frame offset tables). */
  wrap?: (source: ByteSource) => ByteSource;
  nifti: NiftiSliceReader;
  /** Worker pools that decode frames for transcoding and rendering (bounded queues). */
  transcode?: FrameSampleDecoderOptions;
  /** Derived frames for progressive loading (absent: a memory-only one). */
  derived?: DerivedFrames;
  auth: { enabled: boolean; secrets: readonly string[]; clockSkewSeconds: number };
}

export function registerDicomwebRoutes(app: FastifyInstance, options: DicomwebOptions): void {
  if (options.auth.enabled) {
    app.addHook('onRequest', async (request, reply) => {
      if (request.method === 'OPTIONS' || !isDicomwebUrl(request.url)) return;
      const token = tokenOfRequest(request);
      if (token === undefined) {
        reply.header('WWW-Authenticate', 'Bearer realm="medstream-dicomweb"');
        throw new AuthError(
          'missing_signature',
          'DICOMweb needs a token: Authorization: Bearer <token> or ?token=',
        );
      }
      setAccess(request, verifyDicomwebToken(token, options.auth.secrets, options.auth));
    });
  }
  registerQidoRoutes(app, { catalog: options.catalog, maxResults: options.qidoMaxResults });
  registerStowRoutes(app, { catalog: options.catalog, ...options.stow });
  registerWadoRoutes(app, {
    catalog: options.catalog,
    storage: options.stow.storage,
    wrap: options.wrap,
    nifti: options.nifti,
    transcode: options.transcode,
    derived: options.derived,
  });
}
