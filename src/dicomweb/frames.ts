// WADO-RS frames (PS3.18 §10.4.1.1.4, §8.7.3): which representation a client accepts, the media
// type of each transfer syntax (Table 8.7.3-5), the frame list of a URL, and the frames of a
// stored instance read with one range read each (offsets from the catalog's pixel data location
// and the offset tables, dicom/frames.ts). Frames go out in their stored transfer syntax, or
// decoded to explicit VR little endian where transcode.ts can (JPEG 2000 grayscale); a client
// that accepts only something else gets 406.

import type { StoredInstance } from '../catalog/catalog.js';
import { DataSet } from '../dicom/dataset.js';
import { frameTable, type FrameTable } from '../dicom/frames.js';
import type { DicomHeader, PixelDataLocation } from '../dicom/parser.js';
import { Tag, TransferSyntax } from '../dicom/tags.js';
import { BadRequest, NotAcceptable, NotImplemented } from '../errors.js';
import type { ByteSource } from '../storage/types.js';

/**
 * The transfer syntax frames of an instance are sent in as stored: a deflated object's frames are
 * read from its inflated copy, so they are explicit VR little endian (never deflated frames).
 */
export function frameSyntax(stored: string): string {
  return stored === TransferSyntax.DeflatedExplicitVrLittleEndian
    ? TransferSyntax.ExplicitVrLittleEndian
    : stored;
}

/** The media type of frames in a transfer syntax (PS3.18 Table 8.7.3-5). */
export function frameMediaType(transferSyntax: string): string {
  switch (transferSyntax) {
    case TransferSyntax.JpegBaseline:
    case TransferSyntax.JpegExtended:
    case '1.2.840.10008.1.2.4.57':
    case '1.2.840.10008.1.2.4.70':
      return 'image/jpeg';
    case TransferSyntax.JpegLsLossless:
    case TransferSyntax.JpegLsNearLossless:
      return 'image/jls';
    case TransferSyntax.Jpeg2000Lossless:
    case TransferSyntax.Jpeg2000:
      return 'image/jp2';
    case TransferSyntax.Htj2kLossless:
    case TransferSyntax.Htj2kLosslessRpcl:
    case TransferSyntax.Htj2k:
      return 'image/jphc';
    case '1.2.840.10008.1.2.5':
      return 'image/dicom-rle';
    default:
      return 'application/octet-stream';
  }
}

const UNCOMPRESSED = new Set<string>([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
]);

export interface FrameRepresentation {
  /** One part, or a multipart/related body. */
  multipart: boolean;
  mediaType: string;
  transferSyntax: string;
  /** Decoded and sent as explicit VR little endian (not the stored bytes). */
  transcode?: boolean;
}

interface AcceptEntry {
  type: string;
  params: Record<string, string>;
  q: number;
}

/** Splits an Accept header into media ranges with parameters (quoted or not). */
export function parseAccept(accept: string | undefined): AcceptEntry[] {
  if (!accept || accept.trim() === '') return [{ type: '*/*', params: {}, q: 1 }];
  const entries: AcceptEntry[] = [];
  // Commas inside quoted parameter values do not separate ranges.
  for (const range of accept.match(/(?:[^,"]|"[^"]*")+/g) ?? []) {
    const [type, ...rest] = range.split(';').map((s) => s.trim());
    const params: Record<string, string> = {};
    for (const p of rest) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      params[p.slice(0, eq).trim().toLowerCase()] = p
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
    }
    const q = params.q === undefined ? 1 : Number(params.q);
    entries.push({ type: type.toLowerCase(), params, q: Number.isFinite(q) ? q : 0 });
  }
  return entries.filter((e) => e.q > 0).sort((a, b) => b.q - a.q);
}

/**
 * The representation to send frames in: the stored transfer syntax whenever the client accepts it
 * (`transfer-syntax=*`, the stored UID, its media type, or any type), else 406.
 */
export function negotiateFrames(
  accept: string | undefined,
  stored: string,
  /** Whether the stored frames can be decoded to explicit VR little endian. */
  transcodable = false,
  /** Why they cannot, for the 406 message. */
  refusal?: string,
): FrameRepresentation {
  const media = frameMediaType(stored);
  for (const entry of parseAccept(accept)) {
    const multipart = entry.type === 'multipart/related' || entry.type === '*/*';
    const type =
      entry.type === 'multipart/related'
        ? (entry.params.type ?? 'application/octet-stream').toLowerCase()
        : entry.type;
    const ts = entry.params['transfer-syntax'];
    const typeOk =
      type === '*/*' ||
      type === media ||
      (type === 'application/octet-stream' && media === 'application/octet-stream');
    if (ts === '*' && (typeOk || type === 'application/octet-stream' || type === '*/*')) {
      return { multipart, mediaType: media, transferSyntax: stored };
    }
    const explicit = TransferSyntax.ExplicitVrLittleEndian;
    const octet = type === 'application/octet-stream';
    if (ts !== undefined) {
      if (ts === stored && typeOk) return { multipart, mediaType: media, transferSyntax: stored };
      if (ts === explicit && octet && transcodable) {
        return {
          multipart,
          mediaType: 'application/octet-stream',
          transferSyntax: explicit,
          transcode: true,
        };
      }
      continue;
    }
    if (octet && transcodable && !UNCOMPRESSED.has(stored)) {
      // Octet-stream without a syntax means explicit VR little endian (Table 8.7.3-5).
      return { multipart, mediaType: 'application/octet-stream', transferSyntax: explicit, transcode: true };
    }
    // No transfer-syntax parameter: the media type's default (PS3.18 Table 8.7.3-5): explicit VR
    // little endian for octet-stream; the stored syntax for an image type that matches it.
    if (type === '*/*') return { multipart: true, mediaType: media, transferSyntax: stored };
    if (type === 'application/octet-stream' && UNCOMPRESSED.has(stored)) {
      return { multipart, mediaType: media, transferSyntax: stored };
    }
    if (type !== 'application/octet-stream' && type === media)
      return { multipart, mediaType: media, transferSyntax: stored };
  }
  throw new NotAcceptable(
    `frames are stored as ${stored} (${media}); ${transcodable ? 'they can also be had as explicit VR little endian (application/octet-stream)' : `they are not transcoded from this syntax${refusal ? ` (${refusal})` : ''}`}: accept ${media} or transfer-syntax=*`,
  );
}

/** `1,3,5` -> [1, 3, 5] (1-based, each at most once is not required; at most 1000). */
export function parseFrameList(text: string): number[] {
  const parts = text.split(',');
  if (parts.length > 1000) throw new BadRequest('at most 1000 frames in one request');
  return parts.map((p) => {
    if (!/^[1-9]\d{0,8}$/.test(p.trim()))
      throw new BadRequest(`invalid frame number ${JSON.stringify(p.slice(0, 20))}`);
    return Number(p.trim());
  });
}

/** The frame table of a stored DICOM instance, from the catalog's record of its header. */
export function storedFrameTable(source: ByteSource, instance: StoredInstance): FrameTable {
  const pixel = instance.pixelData;
  if (!pixel) throw new BadRequest(`instance ${instance.sopUid} has no pixel data`);
  if ('nifti' in pixel) throw new NotImplemented('frames of NIfTI volumes are not served yet');
  const json = instance.json;
  const num = (tag: string) => {
    const v = json[tag]?.Value?.[0];
    return typeof v === 'number' ? v : undefined;
  };
  const rows = num('00280010') ?? 0;
  const columns = num('00280011') ?? 0;
  const samples = num('00280002') ?? 1;
  const bits = num('00280100') ?? 8;
  const count = instance.numberOfFrames ?? 1;
  // Native YBR_FULL_422 holds two luma samples per Cb/Cr pair: 2 samples a pixel, not 3.
  const ybr422 = json['00280004']?.Value?.[0] === 'YBR_FULL_422' && samples === 3;
  const perPixel = ybr422 ? 2 : samples;
  const frameBytes = Math.ceil((rows * columns * perPixel * bits) / 8);
  // The offset-table elements, where the header had them, as the parser would have kept them.
  const dataset = new DataSet();
  for (const [tag, key] of [
    [Tag.ExtendedOffsetTable, '7FE00001'],
    [Tag.ExtendedOffsetTableLengths, '7FE00002'],
  ] as const) {
    const attribute = json[key];
    if (!attribute) continue;
    const bulk = attribute.BulkDataURI ? /^bulkdata\/(\d+)\/(\d+)$/.exec(attribute.BulkDataURI) : null;
    if (bulk) dataset.elements.set(tag, { tag, vr: 'OV', offset: Number(bulk[1]), length: Number(bulk[2]) });
    else if (attribute.InlineBinary !== undefined) {
      const bytes = new Uint8Array(Buffer.from(attribute.InlineBinary, 'base64'));
      dataset.elements.set(tag, { tag, vr: 'OV', offset: 0, length: bytes.length, bytes });
    }
  }
  const header = { pixelData: pixel as PixelDataLocation, dataset } as unknown as DicomHeader;
  return frameTable(source, header, count, frameBytes);
}
