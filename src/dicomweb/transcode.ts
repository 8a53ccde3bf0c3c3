// Frames transcoded for clients that cannot take the stored transfer syntax (PS3.18 §8.7.3):
// grayscale frames of JPEG 2000, HTJ2K, JPEG-LS, JPEG (8-bit baseline/extended, lossless process
// 14) and RLE are decoded at their stored precision (volumes/frame-samples.ts, worker pools),
// explicit VR big endian frames are byte-swapped, and all are answered as explicit VR little
// endian native pixels (BitsAllocated 8 or 16, signed or not as stored; 12-bit DCT JPEG by
// codecs/jpeg12.ts). 8-bit colour frames are
// decoded by colour.ts (photometric interpretation as colour.ts decodedPhotometric says). What
// cannot be produced is refused: negotiation answers 406, saying why.

import type { StoredInstance } from '../catalog/catalog.js';
import { jsonNumber } from '../dicom/json.js';
import { TransferSyntax } from '../dicom/tags.js';
import { COLOUR_PHOTOMETRICS, colourFrameNative } from './colour.js';
import {
  VOLUME_TRANSFER_SYNTAXES,
  type FramePixelInfo,
  type FrameSampleDecoder,
} from '../volumes/frame-samples.js';

const UNCOMPRESSED = new Set<string>([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
]);
const DCT_JPEG = new Set<string>([TransferSyntax.JpegBaseline, TransferSyntax.JpegExtended]);

/**
 * Why this instance's frames cannot be sent as explicit VR little endian after decoding, or
 * undefined when they can.
 */
export function transcodeRefusal(instance: StoredInstance): string | undefined {
  const syntax = instance.transferSyntax;
  if (UNCOMPRESSED.has(syntax)) return undefined;
  if (!VOLUME_TRANSFER_SYNTAXES.includes(syntax))
    return `frames of transfer syntax ${syntax} are not decoded`;
  const samples = jsonNumber(instance.json, '00280002') ?? 1;
  const bits = jsonNumber(instance.json, '00280100');
  if (samples === 3) {
    const photometric = String(instance.json['00280004']?.Value?.[0] ?? '');
    if (bits !== 8) return `colour frames of BitsAllocated ${bits} are not transcoded (8 only)`;
    if (!COLOUR_PHOTOMETRICS.has(photometric))
      return `colour frames of photometric interpretation ${photometric} are not transcoded`;
    return undefined;
  }
  if (samples !== 1) return `frames of ${samples} samples per pixel are not transcoded`;
  if (bits !== 8 && bits !== 16) return `frames of BitsAllocated ${bits} are not transcoded (8 or 16)`;
  const stored = jsonNumber(instance.json, '00280101') ?? 8;
  if (DCT_JPEG.has(syntax) && stored > 12) {
    return `DCT JPEG frames of BitsStored ${stored} are not decoded (8 or 12 bits of precision)`;
  }
  return undefined;
}

/** Whether this instance's frames can be sent as explicit VR little endian after decoding. */
export function canTranscode(instance: StoredInstance): boolean {
  return !UNCOMPRESSED.has(instance.transferSyntax) && transcodeRefusal(instance) === undefined;
}

/** The native little-endian bytes of one stored frame. */
export function transcodeFrame(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  if ((jsonNumber(instance.json, '00280002') ?? 1) === 3) {
    // 8-bit big endian samples are little endian already: the frame as stored, as the metadata says.
    if (instance.transferSyntax === TransferSyntax.ExplicitVrBigEndian) return Promise.resolve(frame);
    return colourFrameNative(decoder, instance, frame, signal);
  }
  const info: FramePixelInfo = {
    rows: jsonNumber(instance.json, '00280010') ?? 0,
    columns: jsonNumber(instance.json, '00280011') ?? 0,
    bitsAllocated: jsonNumber(instance.json, '00280100') ?? 16,
    bitsStored: jsonNumber(instance.json, '00280101') ?? 16,
    pixelRepresentation: jsonNumber(instance.json, '00280103') ?? 0,
    rescaleSlope: 1,
    rescaleIntercept: 0,
  };
  return decoder.decodeNative(frame, instance.transferSyntax, info, signal);
}
