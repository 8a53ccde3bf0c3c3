// `GET /dicomweb/studies/{s}/series/{se}/volume.nii.gz`: a series as one NIfTI-1 volume for ML
// pipelines. Single-frame DICOM series are read with volumes/dicom-series.ts (sorted along the
// slice normal, LPS -> RAS affine, Modality LUT applied), a multi-frame instance alone in its series
// with volumes/multiframe-volume.ts (functional groups), and written as int16 or float32; a NIfTI
// volume served as a series answers its stored file (gzipped when it was not). HTTP only.

import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import type { Catalog, StoredInstance } from '../../../catalog/catalog.js';
import { BadRequest, NotFound } from '../../../errors.js';
import type { ByteSource } from '../../../storage/types.js';
import { readDicomSeries } from '../../../volumes/dicom-series.js';
import { readMultiFrameVolume } from '../../../volumes/multiframe-volume.js';
import type { FrameSampleDecoder } from '../../../volumes/frame-samples.js';
import { encodeNiftiVolume } from '../../../volumes/nifti.js';
import { isGzip } from '../../../volumes/nifti-header.js';
import { clientAbortSignal } from '../../abort.js';
import { assertStudyAccess } from '../../dicomweb-auth.js';
import { accessOf } from './common.js';

/** Largest volume written, in voxels (512 x 512 x 512). */
const MAX_VOXELS = 2 ** 27;
/** Largest stored NIfTI file answered as is. */
const MAX_NIFTI_BYTES = 2 * 1024 ** 3;

export interface VolumeRouteOptions {
  catalog: Catalog;
  /** Opens an instance's stored object at the version the catalog recorded. */
  open: (instance: StoredInstance, signal: AbortSignal) => Promise<ByteSource>;
  decoder: () => FrameSampleDecoder;
  /** The stored bytes of frames (1-based) of an instance. */
  readFrames: (instance: StoredInstance, numbers: number[], signal: AbortSignal) => Promise<Uint8Array[]>;
}

export function registerVolumeRoute(app: FastifyInstance, options: VolumeRouteOptions): void {
  app.get<{ Params: { study: string; series: string } }>(
    '/dicomweb/studies/:study/series/:series/volume.nii.gz',
    async (request, reply) => {
      const { study, series } = request.params;
      assertStudyAccess(accessOf(request), study);
      const instances = (await options.catalog.instancesOf(study, series)).filter(
        (i) => i.seriesUid === series,
      );
      if (instances.length === 0) throw new NotFound(`no series ${series} in study ${study}`);
      const signal = clientAbortSignal(reply);
      reply
        .type('application/gzip')
        .header('Content-Disposition', `attachment; filename="${series}.nii.gz"`)
        .header('Cache-Control', 'private, max-age=3600');
      const pixel = instances[0].pixelData;
      if (pixel && 'nifti' in pixel) {
        // A NIfTI volume served as a series: the stored file is the volume.
        const source = await options.open(instances[0], signal);
        if (source.size > MAX_NIFTI_BYTES)
          throw new BadRequest(`the stored volume is over ${MAX_NIFTI_BYTES} bytes`);
        const bytes = await source.read(0, source.size, { purpose: 'data', signal });
        return reply.send(Buffer.from(isGzip(bytes) ? bytes : gzipSync(bytes, { level: 1 })));
      }
      const multiFrame = instances.length === 1 && (instances[0].numberOfFrames ?? 1) > 1;
      const volume = multiFrame
        ? await readMultiFrameVolume(
            instances[0].json,
            instances[0].transferSyntax,
            (numbers) => options.readFrames(instances[0], numbers, signal),
            options.decoder(),
            { signal, maxVoxels: MAX_VOXELS },
          )
        : await readDicomSeries(
            await Promise.all(instances.map((i) => options.open(i, signal))),
            options.decoder(),
            { signal, maxVoxels: MAX_VOXELS },
          );
      return reply.send(Buffer.from(encodeNiftiVolume(volume, `medstream ${series}`.slice(0, 79))));
    },
  );
}
