// WADO-RS routes (PS3.18 §10.4): metadata of a study, series or instance from the catalog (no
// storage read; gzip, ETag / 304), frames in their stored transfer syntax (multipart/related, or
// one part when the client asks for one media type; byte ranges over the body as sent), whole
// studies, series and instances (application/dicom, streamed from storage) and bulk data by
// range read (little endian: big endian values swapped, dicomweb/bulkdata.ts); rendered
// resources and thumbnails are rendered.ts, series as NIfTI volume.ts. HTTP only: negotiation and
// shaping live in dicomweb/.

import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Catalog, StoredInstance } from '../../../catalog/catalog.js';
import {
  frameSyntax,
  negotiateFrames,
  parseAccept,
  parseFrameList,
  storedFrameTable,
} from '../../../dicomweb/frames.js';
import { littleEndianBulkData } from '../../../dicomweb/bulkdata.js';
import { instanceMetadata, instanceUrl, metadataEtag } from '../../../dicomweb/metadata.js';
import { canTranscode, transcodeFrame, transcodeRefusal } from '../../../dicomweb/transcode.js';
import { FrameSampleDecoder, type FrameSampleDecoderOptions } from '../../../volumes/frame-samples.js';
import type { NiftiSliceReader } from '../../../volumes/nifti-slices.js';
import { deflatedDataOffset } from '../../../dicom/deflated.js';
import type { FrameTable } from '../../../dicom/frames.js';
import { TransferSyntax } from '../../../dicom/tags.js';
import { BadRequest, CorruptFile, InvalidRange, NotAcceptable, NotFound } from '../../../errors.js';
import { ByteLru } from '../../../io/lru.js';
import { mapConcurrent } from '../../../storage/tree-listing.js';
import type { ByteSource, Storage } from '../../../storage/types.js';
import { clientAbortSignal } from '../../abort.js';
import type { DerivedFrames } from '../../../dicomweb/derived.js';
import { derivedKindForAccept, registerDerivedRoutes } from './derived.js';
import { sendWithRanges } from '../../byte-ranges.js';
import { assertStudyAccess } from '../../dicomweb-auth.js';
import { accessOf, acceptsJson, dicomwebBase } from './common.js';
import { multipartBody } from './multipart-body.js';
import { registerRenderedRoutes } from './rendered.js';
import { registerVolumeRoute } from './volume.js';

export interface WadoRouteOptions {
  catalog: Catalog;
  storage: Storage;
  /** Slices of NIfTI volumes (a bounded cache of decompressed .nii.gz). */
  nifti: NiftiSliceReader;
  /** Wraps a source with the block cache (offset tables are small metadata reads). */
  wrap?: (source: ByteSource) => ByteSource;
  /** Decoder pools for transcoded and rendered frames (a full queue answers 503 + Retry-After). */
  transcode?: FrameSampleDecoderOptions;
  /** Derived frames for progressive loading (derived.ts); absent = a memory-only one. */
  derived?: DerivedFrames;
}

interface Params {
  study: string;
  series?: string;
  instance?: string;
  frames?: string;
  offset?: string;
  length?: string;
}

const MAX_BULK_BYTES = 256 * 1024 * 1024;
const STREAM_CHUNK = 4 * 1024 * 1024;

export function registerWadoRoutes(app: FastifyInstance, options: WadoRouteOptions): void {
  const { catalog, storage } = options;
  // Decoding for transcoded frames: worker threads started on first use, stopped with the server.
  let samples: FrameSampleDecoder | undefined;
  const decoder = () => (samples ??= new FrameSampleDecoder(options.transcode));
  app.addHook('onClose', async () => {
    await samples?.close();
  });
  // Per stored version: its opened source and frame table (offset tables read once).
  const opened = new ByteLru<string, { source: ByteSource; table?: FrameTable }>({
    maxBytes: 4096,
    sizeOf: () => 1,
  });

  /** The served instance the URL names, checked against its study and series. */
  const instanceOf = async (request: FastifyRequest<{ Params: Params }>): Promise<StoredInstance> => {
    const { study, series, instance } = request.params;
    assertStudyAccess(accessOf(request), study);
    const found = await catalog.instance(instance!);
    if (!found || found.studyUid !== study || found.seriesUid !== series) {
      throw new NotFound(`no instance ${instance} in series ${series} of study ${study}`);
    }
    return found;
  };

  /** Opens the stored object at the version the catalog recorded (S3: no HEAD, from the ETag). */
  const open = async (instance: StoredInstance, signal: AbortSignal): Promise<ByteSource> => {
    const dash = instance.version.indexOf('-');
    const etag = dash > 0 ? instance.version.slice(dash + 1) : '';
    const source =
      storage.kind === 's3' && storage.openListed && etag !== ''
        ? await storage.openListed({ key: instance.objectKey, size: instance.size, etag }, { signal })
        : await storage.open(instance.objectKey, { signal });
    if (source.size !== instance.size) {
      throw new NotFound(`instance ${instance.sopUid} changed in storage since it was indexed; re-index`);
    }
    return options.wrap ? options.wrap(source) : source;
  };

  /** The object frames and bulk data are read from: a deflated one inflated (cached on disk). */
  const openData = async (instance: StoredInstance, signal: AbortSignal): Promise<ByteSource> => {
    const source = await open(instance, signal);
    if (instance.transferSyntax !== TransferSyntax.DeflatedExplicitVrLittleEndian) return source;
    const from = await deflatedDataOffset(source, signal);
    return options.nifti.deflatedDicom(source, instance.version, from, signal);
  };

  /** The stored bytes of frames (1-based) of an instance: one range read each. */
  const readFrames = async (instance: StoredInstance, numbers: number[], signal: AbortSignal) => {
    const cacheKey = `${instance.objectKey}\0${instance.version}`;
    let entry = opened.get(cacheKey);
    if (!entry) {
      entry = { source: await openData(instance, signal) };
      opened.set(cacheKey, entry);
    }
    const pixel = instance.pixelData;
    if (pixel && 'nifti' in pixel) {
      if (numbers.some((n) => n !== 1)) throw new NotFound(`a NIfTI slice instance has one frame`);
      const source = entry.source;
      return Promise.all(numbers.map(() => options.nifti.slice(source, instance.version, pixel, signal)));
    }
    entry.table ??= storedFrameTable(entry.source, instance);
    const table = entry.table;
    for (const n of numbers) {
      if (n > table.count)
        throw new NotFound(`frame ${n} does not exist: instance ${instance.sopUid} has ${table.count}`);
    }
    // The source is bound to the version the catalog recorded: a replaced object fails its reads.
    return Promise.all(numbers.map((n) => table.read(n - 1, signal)));
  };

  const derivedRoutes = registerDerivedRoutes(app, { derived: options.derived, instanceOf, readFrames });
  registerRenderedRoutes(app, { catalog, instanceOf, readFrames, decoder });
  registerVolumeRoute(app, { catalog, open, decoder, readFrames });

  // Serialised metadata answers by validator (and root), bounded in bytes.
  const metadataBodies = new ByteLru<string, string>({
    maxBytes: 64 * 1024 * 1024,
    sizeOf: (body) => body.length,
  });
  const metadata = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const type = acceptsJson(request);
    const { study, series, instance } = request.params;
    assertStudyAccess(accessOf(request), study);
    const one = instance !== undefined ? await instanceOf(request) : undefined;
    const versions = one ? [one] : await catalog.versionsOf(study, series);
    if (versions.length === 0) {
      throw new NotFound(
        series === undefined ? `no study ${study}` : `no series ${series} in study ${study}`,
      );
    }
    const etag = metadataEtag(versions);
    reply.header('ETag', etag).header('Cache-Control', 'no-cache');
    if (request.headers['if-none-match'] === etag) return reply.code(304).send();
    const base = dicomwebBase(request);
    // The serialised answer of these versions, for this root: a repeated request costs the
    // version query only.
    const cacheKey = `${etag}\0${base}`;
    let body = metadataBodies.get(cacheKey);
    if (body === undefined) {
      const instances = one ? [one] : await catalog.instancesOf(study, series);
      body = JSON.stringify(instances.map((i) => instanceMetadata(i, base)));
      metadataBodies.set(cacheKey, body);
    }
    return reply.type(type).send(body);
  };
  app.get('/dicomweb/studies/:study/metadata', metadata);
  app.get('/dicomweb/studies/:study/series/:series/metadata', metadata);
  app.get('/dicomweb/studies/:study/series/:series/instances/:instance/metadata', metadata);

  app.get<{ Params: Params }>(
    '/dicomweb/studies/:study/series/:series/instances/:instance/frames/:frames',
    async (request, reply) => {
      const numbers = parseFrameList(request.params.frames!);
      const instance = await instanceOf(request);
      const query = request.query as { accept?: string };
      const alternate = derivedKindForAccept(query.accept ?? request.headers.accept, instance);
      if (alternate) return derivedRoutes.send(request, reply, instance, numbers, alternate);
      const representation = negotiateFrames(
        query.accept ?? request.headers.accept,
        frameSyntax(instance.transferSyntax),
        canTranscode(instance),
        transcodeRefusal(instance),
      );
      if (!representation.multipart && numbers.length > 1) {
        throw new NotAcceptable(
          'several frames need multipart/related; ask for one frame or accept multipart',
        );
      }
      const signal = clientAbortSignal(reply);
      const cacheKey = `${instance.objectKey}\0${instance.version}`;
      const stored = await readFrames(instance, numbers, signal);
      const frames = representation.transcode
        ? // A few at a time: a 1000-frame request must not fill the bounded decoder queue alone.
          await mapConcurrent(stored, 4, (f) => transcodeFrame(decoder(), instance, f, signal))
        : stored;
      const contentType = `${representation.mediaType}; transfer-syntax=${representation.transferSyntax}`;
      reply.header('Cache-Control', 'private, max-age=3600');
      // Strong validator of these bytes: the stored version, the frames and their representation.
      const etag = `"${createHash('sha256')
        .update(`${cacheKey}\0${numbers.join(',')}\0${contentType}\0${representation.multipart}`)
        .digest('base64url')
        .slice(0, 27)}"`;
      if (!representation.multipart) {
        return sendWithRanges(request, reply.type(contentType), Buffer.from(frames[0]), etag);
      }
      // The boundary is derived from the validator, so a range sequence over several requests
      // (and replicas) sees the same bytes.
      const boundary = `medstream-${etag.slice(1, 25)}`;
      const url = `${instanceUrl(dicomwebBase(request), instance)}/frames`;
      const body = multipartBody(
        frames.map((frame, i) => ({
          headers: { 'Content-Type': contentType, 'Content-Location': `${url}/${numbers[i]}` },
          body: frame,
        })),
        boundary,
      );
      return sendWithRanges(
        request,
        reply.type(`multipart/related; type="${representation.mediaType}"; boundary=${boundary}`),
        body,
        etag,
      );
    },
  );

  /**
   * Retrieve Study / Series / Instance (PS3.18 §10.4.1.1.1): the stored objects as they are,
   * streamed one after another from storage (never held in memory), as one multipart/related body
   * (or a single application/dicom body for one instance, when that is what the client accepts).
   */
  const retrieve = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply) => {
    const { study, series, instance } = request.params;
    assertStudyAccess(accessOf(request), study);
    const found =
      instance !== undefined ? [await instanceOf(request)] : await catalog.instancesOf(study, series);
    // NIfTI slices have no stored DICOM object of their own.
    const stored = found.filter((i) => i.objectKey === i.key);
    if (stored.length === 0) {
      throw found.length === 0
        ? new NotFound(series === undefined ? `no study ${study}` : `no series ${series} in study ${study}`)
        : new NotAcceptable('these instances are NIfTI slices: no stored DICOM objects to retrieve');
    }
    const accepted = parseAccept(request.headers.accept);
    const multipartOk = accepted.some(
      (a) =>
        a.type === '*/*' ||
        (a.type === 'multipart/related' && (a.params.type ?? 'application/dicom') === 'application/dicom'),
    );
    const single =
      instance !== undefined &&
      accepted.some((a) => a.type === 'application/dicom') &&
      !accepted.some((a) => a.type === 'multipart/related');
    if (!single && !multipartOk) throw new NotAcceptable('instances are served as application/dicom');
    const signal = clientAbortSignal(reply);
    const sources = await Promise.all(stored.map((i) => open(i, signal)));
    const boundary = `medstream-${randomBytes(12).toString('hex')}`;
    const base = dicomwebBase(request);
    const heads = stored.map((i) =>
      single
        ? Buffer.alloc(0)
        : Buffer.from(
            `--${boundary}\r\nContent-Type: application/dicom\r\nContent-Location: ${instanceUrl(base, i)}\r\n\r\n`,
          ),
    );
    const separator = Buffer.from(single ? '' : '\r\n');
    const tail = Buffer.from(single ? '' : `--${boundary}--\r\n`);
    async function* chunks() {
      for (const [n, source] of sources.entries()) {
        yield heads[n];
        for (let at = 0; at < source.size; at += STREAM_CHUNK) {
          yield Buffer.from(
            await source.read(at, Math.min(STREAM_CHUNK, source.size - at), { purpose: 'data', signal }),
          );
        }
        yield separator;
      }
      yield tail;
    }
    const length = sources.reduce(
      (sum, source, n) => sum + heads[n].length + source.size + separator.length,
      tail.length,
    );
    reply
      .type(
        single ? 'application/dicom' : `multipart/related; type="application/dicom"; boundary=${boundary}`,
      )
      .header('Content-Length', String(length));
    return reply.send(Readable.from(chunks()));
  };
  app.get('/dicomweb/studies/:study', retrieve);
  app.get('/dicomweb/studies/:study/series/:series', retrieve);
  app.get('/dicomweb/studies/:study/series/:series/instances/:instance', retrieve);

  app.get<{ Params: Params }>(
    '/dicomweb/studies/:study/series/:series/instances/:instance/bulkdata/:offset/:length',
    async (request, reply) => {
      const offset = Number(request.params.offset);
      const length = Number(request.params.length);
      if (
        !/^\d{1,15}$/.test(request.params.offset!) ||
        !/^\d{1,10}$/.test(request.params.length!) ||
        length === 0
      ) {
        throw new BadRequest('bulk data addresses are /bulkdata/<offset>/<length> in bytes');
      }
      if (length > MAX_BULK_BYTES)
        throw new BadRequest(`bulk data values over ${MAX_BULK_BYTES} bytes are not served`);
      const instance = await instanceOf(request);
      const source = await openData(instance, clientAbortSignal(reply));
      if (offset + length > source.size)
        throw new InvalidRange(`bytes ${offset}+${length} lie past the end of the instance`);
      const stored = await source.read(offset, length, { purpose: 'data', signal: clientAbortSignal(reply) });
      if (stored.length !== length) throw new CorruptFile('short read');
      const bytes = littleEndianBulkData(instance.transferSyntax, instance.json, offset, stored);
      const accepted = parseAccept(request.headers.accept);
      if (
        accepted.some((a) => a.type === 'application/octet-stream') &&
        !accepted.some((a) => a.type === 'multipart/related')
      ) {
        return reply.type('application/octet-stream').send(Buffer.from(bytes));
      }
      const boundary = `medstream-${randomBytes(12).toString('hex')}`;
      return reply
        .type(`multipart/related; type="application/octet-stream"; boundary=${boundary}`)
        .send(
          multipartBody([{ headers: { 'Content-Type': 'application/octet-stream' }, body: bytes }], boundary),
        );
    },
  );
}
