// WADO-RS derived frames for progressive loading: the alternate paths Cornerstone3D's `framesPath`
// names, siblings of /frames/ (/htj2k/, /htj2kThumbnail/, /jls/, /jlsThumbnail/, /lossy/), and the
// `accept=` / Accept forms of /frames/ asking for a syntax the frames are not stored in (image/jhc,
// image/jphc, image/jls, transfer-syntax=.201/.202/.203/.80), which wado.ts hands over here. Bodies
// are deterministic, so byte ranges, strong ETags and shared caches (CDN) hold across replicas.

import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { StoredInstance } from '../../../catalog/catalog.js';
import { DerivedCache } from '../../../dicomweb/derived-cache.js';
import { canDerive, DERIVED_KINDS, DerivedFrames, type DerivedKind } from '../../../dicomweb/derived.js';
import { frameMediaType, parseAccept, parseFrameList } from '../../../dicomweb/frames.js';
import { instanceUrl } from '../../../dicomweb/metadata.js';
import { TransferSyntax } from '../../../dicom/tags.js';
import { NotAcceptable } from '../../../errors.js';
import { clientAbortSignal } from '../../abort.js';
import { sendWithRanges } from '../../byte-ranges.js';
import { dicomwebBase } from './common.js';
import { multipartBody } from './multipart-body.js';

interface Params {
  study: string;
  series?: string;
  instance?: string;
  frames?: string;
}

export interface DerivedRouteOptions {
  /** Built in cli/ (with --derived-cache / --derived-store); absent = a memory-only one. */
  derived?: DerivedFrames;
  instanceOf: (request: FastifyRequest<{ Params: Params }>) => Promise<StoredInstance>;
  readFrames: (instance: StoredInstance, numbers: number[], signal: AbortSignal) => Promise<Uint8Array[]>;
}

export interface DerivedRoutes {
  /** Answers frames `numbers` of `instance` in the `kind` representation. */
  send(
    request: FastifyRequest,
    reply: FastifyReply,
    instance: StoredInstance,
    numbers: number[],
    kind: DerivedKind,
  ): Promise<FastifyReply>;
}

const HTJ2K_TYPES = new Set(['image/jphc', 'image/jhc']);
const JLS_TYPES = new Set(['image/jls', 'image/x-jls']);
const HTJ2K_SYNTAXES = new Set<string>([TransferSyntax.Htj2kLossless, TransferSyntax.Htj2kLosslessRpcl]);

/** The media types and transfer syntaxes a client may name for one kind. */
function accepts(kind: DerivedKind): { types: Set<string>; syntaxes: Set<string> } {
  if (kind === 'jls' || kind === 'jlsThumbnail')
    return { types: JLS_TYPES, syntaxes: new Set([TransferSyntax.JpegLsLossless]) };
  if (kind === 'lossy') return { types: HTJ2K_TYPES, syntaxes: new Set([TransferSyntax.Htj2k]) };
  return { types: HTJ2K_TYPES, syntaxes: HTJ2K_SYNTAXES };
}

/** Multipart or one part, for a derived path; 406 when the client accepts neither. */
function negotiate(accept: string | undefined, kind: DerivedKind): { multipart: boolean } {
  const { types, syntaxes } = accepts(kind);
  for (const entry of parseAccept(accept)) {
    const ts = entry.params['transfer-syntax'];
    const tsOk = ts === undefined || ts === '*' || syntaxes.has(ts);
    if (entry.type === '*/*') return { multipart: true };
    if (entry.type === 'multipart/related') {
      const inner = (entry.params.type ?? 'application/octet-stream').toLowerCase();
      const innerOk = inner === '*/*' || inner === 'application/octet-stream' || types.has(inner);
      if (innerOk && tsOk) return { multipart: true };
      continue;
    }
    if ((types.has(entry.type) || entry.type === 'image/*') && tsOk) return { multipart: false };
    if (entry.type === 'application/octet-stream' && ts !== undefined && tsOk) return { multipart: false };
  }
  throw new NotAcceptable(
    `the ${kind} representation is ${[...types][0]} (${[...syntaxes].join(' or ')}): accept it, multipart/related or */*`,
  );
}

/**
 * The derived representation a /frames/ request asks for, or undefined when the stored frames
 * (or the existing transcoding) answer it: the first accepted entry that the stored syntax cannot
 * satisfy and that names HTJ2K (lossless or, by transfer syntax, lossy) or JPEG-LS.
 */
export function derivedKindForAccept(
  accept: string | undefined,
  instance: StoredInstance,
): DerivedKind | undefined {
  if (!canDerive(instance)) return undefined;
  const stored = instance.transferSyntax;
  for (const entry of parseAccept(accept)) {
    const type =
      entry.type === 'multipart/related'
        ? (entry.params.type ?? 'application/octet-stream').toLowerCase()
        : entry.type;
    const ts = entry.params['transfer-syntax'];
    // Entries the stored frames (or transcoding to native pixels) answer go to wado.ts.
    if (type === '*/*' || ts === '*' || ts === stored) return undefined;
    if (ts === undefined && (type === frameMediaType(stored) || type === 'application/octet-stream'))
      return undefined;
    if (ts === TransferSyntax.ExplicitVrLittleEndian) return undefined;
    if (ts === TransferSyntax.Htj2k) return 'lossy';
    if ((ts !== undefined && HTJ2K_SYNTAXES.has(ts)) || (ts === undefined && HTJ2K_TYPES.has(type)))
      return 'htj2k';
    if (
      (ts === TransferSyntax.JpegLsLossless || (ts === undefined && JLS_TYPES.has(type))) &&
      stored !== TransferSyntax.JpegLsLossless &&
      stored !== TransferSyntax.JpegLsNearLossless
    )
      return 'jls';
  }
  return undefined;
}

/** Registers the alternate paths; returns the sender wado.ts uses for `accept=` on /frames/. */
export function registerDerivedRoutes(app: FastifyInstance, options: DerivedRouteOptions): DerivedRoutes {
  let own: DerivedFrames | undefined;
  const derived = () =>
    options.derived ??
    (own ??= new DerivedFrames({ cache: new DerivedCache({ maxBytes: 0, memoryBytes: 64 * 1024 * 1024 }) }));
  app.addHook('onClose', async () => {
    await own?.close();
  });

  const send: DerivedRoutes['send'] = async (request, reply, instance, numbers, kind) => {
    const query = request.query as { accept?: string };
    const { multipart } = negotiate(query.accept ?? request.headers.accept, kind);
    if (!multipart && numbers.length > 1)
      throw new NotAcceptable('several frames need multipart/related; ask for one frame or accept multipart');
    // Strong validator: the stored version, frames, kind and encoder are in every key, so it is
    // known before anything is read or encoded, and a revalidation costs neither.
    const keys = numbers.map((n) => DerivedFrames.key(instance, n, kind));
    const etag = `"${createHash('sha256')
      .update(`${keys.join(',')}\0${multipart}`)
      .digest('base64url')
      .slice(0, 27)}"`;
    // Shared caches may keep these (a CDN in front of MedStream); token-bearing requests stay private.
    const authorized = request.headers.authorization !== undefined || /[?&]token=/.test(request.url);
    reply
      .header('Cache-Control', `${authorized ? 'private' : 'public'}, max-age=86400`)
      .header('Vary', 'Accept');
    if (request.headers['if-none-match'] === etag) return reply.header('ETag', etag).code(304).send();
    const signal = clientAbortSignal(reply);
    const frames = await Promise.all(
      numbers.map((n) =>
        derived().frame(
          instance,
          n,
          kind,
          async (s) => (await options.readFrames(instance, [n], s))[0],
          signal,
        ),
      ),
    );
    if (!multipart) {
      const [frame] = frames;
      return sendWithRanges(
        request,
        reply.type(`${frame.mediaType}; transfer-syntax=${frame.transferSyntax}`),
        Buffer.from(frame.bytes),
        etag,
      );
    }
    // The boundary comes from the validator, so a range sequence over several requests (and
    // replicas) sees the same bytes.
    const boundary = `medstream-${etag.slice(1, 25)}`;
    const url = `${instanceUrl(dicomwebBase(request), instance)}/${kind}`;
    const body = multipartBody(
      frames.map((frame, i) => ({
        headers: {
          'Content-Type': `${frame.mediaType}; transfer-syntax=${frame.transferSyntax}`,
          'Content-Location': `${url}/${numbers[i]}`,
        },
        body: frame.bytes,
      })),
      boundary,
    );
    return sendWithRanges(
      request,
      reply.type(`multipart/related; type="${frames[0].mediaType}"; boundary=${boundary}`),
      body,
      etag,
    );
  };

  for (const kind of DERIVED_KINDS) {
    app.get<{ Params: Params }>(
      `/dicomweb/studies/:study/series/:series/instances/:instance/${kind}/:frames`,
      async (request, reply) => {
        const numbers = parseFrameList(request.params.frames!);
        return send(request, reply, await options.instanceOf(request), numbers, kind);
      },
    );
  }
  return { send };
}
