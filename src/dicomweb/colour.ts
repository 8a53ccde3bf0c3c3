// Colour frames (8-bit, SamplesPerPixel 3) decoded to interleaved samples, with the photometric
// interpretation those samples really have: for rendering (colourFrameRgb, always RGB) and for
// transcoding to explicit VR little endian (colourFrameNative). Native frames in either planar
// configuration, RGB, YBR_FULL or YBR_FULL_422 (two luma samples share one Cb/Cr pair, PS3.3
// C.7.6.3.1.2); RLE (PS3.5 Annex G); JPEG, lossless JPEG, JPEG-LS, JPEG 2000 and HTJ2K through the
// worker pools. Which colour space each decoder leaves is `decodedPhotometric` (docs/dicomweb.md).

import type { StoredInstance } from '../catalog/catalog.js';
import { jsonNumber } from '../dicom/json.js';
import { decodeDicomRle } from '../codecs/dicom-rle.js';
import { rgbToYcbcrInPlace, ycbcrToRgbInPlace } from '../codecs/ycbcr.js';
import { TransferSyntax } from '../dicom/tags.js';
import { DecodeError, UnsupportedFormat } from '../errors.js';
import type { FrameSampleDecoder } from '../volumes/frame-samples.js';

const NATIVE = new Set<string>([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
  TransferSyntax.DeflatedExplicitVrLittleEndian,
  // 8-bit samples: big endian changes nothing.
  TransferSyntax.ExplicitVrBigEndian,
]);
const RLE = '1.2.840.10008.1.2.5';
const DCT_JPEG = new Set<string>([TransferSyntax.JpegBaseline, TransferSyntax.JpegExtended]);
/** Photometric interpretations of colour frames this module reads. */
export const COLOUR_PHOTOMETRICS = new Set(['RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_RCT', 'YBR_ICT']);

/** Planar (RRR..GGG..BBB) to interleaved. */
function interleave(planes: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    out[3 * p] = planes[p];
    out[3 * p + 1] = planes[pixels + p];
    out[3 * p + 2] = planes[2 * pixels + p];
  }
  return out;
}

/** Interleaved to planar (RRR..GGG..BBB). */
function deinterleave(data: Uint8Array, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    out[p] = data[3 * p];
    out[pixels + p] = data[3 * p + 1];
    out[2 * pixels + p] = data[3 * p + 2];
  }
  return out;
}

/** YBR_FULL_422 native (Y1 Y2 Cb Cr per pixel pair, row by row) to interleaved YBR_FULL. */
function expand422(data: Uint8Array, rows: number, columns: number): Uint8Array {
  const out = new Uint8Array(rows * columns * 3);
  let at = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c += 2) {
      const y1 = data[at];
      const y2 = data[at + 1];
      const cb = data[at + 2];
      const cr = data[at + 3];
      at += 4;
      const o = 3 * (r * columns + c);
      out[o] = y1;
      out[o + 1] = cb;
      out[o + 2] = cr;
      if (c + 1 < columns) {
        out[o + 3] = y2;
        out[o + 4] = cb;
        out[o + 5] = cr;
      }
    }
  }
  return out;
}

function photometricOf(instance: StoredInstance): string {
  return String(instance.json['00280004']?.Value?.[0] ?? 'RGB').trim();
}

/**
 * The colour space a decoded frame of this instance is in: YBR_FULL where the stored samples are
 * YBR_FULL and the decoder keeps components as they are (native, RLE, lossless JPEG, JPEG-LS,
 * wavelets without a component transform) or, for DCT JPEG, where MedStream converts libjpeg's
 * RGB back so the metadata stays true; RGB otherwise — YBR_FULL_422 DCT JPEG (libjpeg upsamples and
 * converts) and YBR_RCT / YBR_ICT (the JPEG 2000 / HTJ2K decoder inverts the transform).
 */
export function decodedPhotometric(instance: StoredInstance): 'RGB' | 'YBR_FULL' {
  const photometric = photometricOf(instance);
  if (photometric === 'YBR_FULL') return 'YBR_FULL';
  if (photometric === 'YBR_FULL_422' && NATIVE.has(instance.transferSyntax)) return 'YBR_FULL';
  return 'RGB';
}

/** One stored colour frame as interleaved 8-bit samples in `decodedPhotometric(instance)`. */
export async function decodeColourFrame(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const rows = jsonNumber(instance.json, '00280010') ?? 0;
  const columns = jsonNumber(instance.json, '00280011') ?? 0;
  const bits = jsonNumber(instance.json, '00280100') ?? 8;
  const photometric = photometricOf(instance);
  if (bits !== 8) throw new UnsupportedFormat(`${bits}-bit colour frames are not decoded (8 only)`);
  if (!COLOUR_PHOTOMETRICS.has(photometric))
    throw new UnsupportedFormat(`colour frames of photometric interpretation ${photometric} are not decoded`);
  const pixels = rows * columns;
  const syntax = instance.transferSyntax;
  if (NATIVE.has(syntax)) {
    if (photometric === 'YBR_FULL_422') {
      const size = rows * Math.ceil(columns / 2) * 4;
      if (frame.length < size)
        throw new DecodeError(`YBR_FULL_422 frame has ${frame.length} bytes, needs ${size}`);
      return expand422(frame, rows, columns);
    }
    if (frame.length < pixels * 3)
      throw new DecodeError(`colour frame has ${frame.length} bytes, needs ${pixels * 3}`);
    return jsonNumber(instance.json, '00280006') === 1
      ? interleave(frame, pixels)
      : frame.slice(0, pixels * 3);
  }
  if (syntax === RLE) return decodeDicomRle(frame, { rows, columns, bitsAllocated: 8, samplesPerPixel: 3 });
  const data = await decoder.decodeColour(frame, syntax, { rows, columns }, signal);
  // libjpeg always leaves RGB for a 3-component DCT JPEG: back to YCbCr where the metadata says so.
  if (DCT_JPEG.has(syntax) && photometric === 'YBR_FULL') rgbToYcbcrInPlace(data);
  return data;
}

/** One stored colour frame as interleaved 8-bit RGB (rows x columns x 3), for rendering. */
export async function colourFrameRgb(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const data = await decodeColourFrame(decoder, instance, frame, signal);
  if (decodedPhotometric(instance) === 'YBR_FULL') ycbcrToRgbInPlace(data);
  return data;
}

/**
 * One stored colour frame as explicit VR little endian native pixels: `decodedPhotometric`
 * samples, laid out as the instance's PlanarConfiguration says (0 when absent).
 */
export async function colourFrameNative(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const data = await decodeColourFrame(decoder, instance, frame, signal);
  const pixels = (jsonNumber(instance.json, '00280010') ?? 0) * (jsonNumber(instance.json, '00280011') ?? 0);
  return jsonNumber(instance.json, '00280006') === 1 ? deinterleave(data, pixels) : data;
}
