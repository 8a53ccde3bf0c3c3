// Colour frames for rendering (8-bit, SamplesPerPixel 3): the stored frame as interleaved RGB.
// Native frames in either planar configuration, RGB, YBR_FULL or YBR_FULL_422 (two luma samples
// share one Cb/Cr pair, PS3.3 C.7.6.3.1.2); RLE (PS3.5 Annex G, colour-by-plane segments); and
// JPEG, JPEG-LS and HTJ2K through the worker pools (JPEG leaves libjpeg's RGB; YBR_FULL JPEG-LS
// is converted here).

import type { StoredInstance } from '../catalog/catalog.js';
import { jsonNumber } from '../dicom/json.js';
import { decodeDicomRle } from '../codecs/dicom-rle.js';
import { ycbcrToRgbInPlace } from '../codecs/ycbcr.js';
import { TransferSyntax } from '../dicom/tags.js';
import { DecodeError, UnsupportedFormat } from '../errors.js';
import type { FrameSampleDecoder } from '../volumes/frame-samples.js';

const NATIVE = new Set<string>([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
]);
const RLE = '1.2.840.10008.1.2.5';
const JPEG_LS = new Set<string>([TransferSyntax.JpegLsLossless, TransferSyntax.JpegLsNearLossless]);

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

/** One stored colour frame as interleaved 8-bit RGB (rows x columns x 3). */
export async function colourFrameRgb(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const rows = jsonNumber(instance.json, '00280010') ?? 0;
  const columns = jsonNumber(instance.json, '00280011') ?? 0;
  const bits = jsonNumber(instance.json, '00280100') ?? 8;
  const photometric = String(instance.json['00280004']?.Value?.[0] ?? 'RGB');
  if (bits !== 8)
    throw new UnsupportedFormat(`rendering ${bits}-bit colour frames is not supported (8 only)`);
  const pixels = rows * columns;
  const syntax = instance.transferSyntax;
  let rgb: Uint8Array;
  let ybr = photometric === 'YBR_FULL' || photometric === 'YBR_FULL_422';
  if (NATIVE.has(syntax)) {
    if (photometric === 'YBR_FULL_422') {
      const size = rows * Math.ceil(columns / 2) * 4;
      if (frame.length < size)
        throw new DecodeError(`YBR_FULL_422 frame has ${frame.length} bytes, needs ${size}`);
      rgb = expand422(frame, rows, columns);
    } else {
      if (frame.length < pixels * 3)
        throw new DecodeError(`colour frame has ${frame.length} bytes, needs ${pixels * 3}`);
      rgb =
        jsonNumber(instance.json, '00280006') === 1 ? interleave(frame, pixels) : frame.slice(0, pixels * 3);
    }
  } else if (syntax === RLE) {
    rgb = decodeDicomRle(frame, { rows, columns, bitsAllocated: 8, samplesPerPixel: 3 });
  } else {
    rgb = await decoder.decodeColour(frame, syntax, { rows, columns }, signal);
    // libjpeg, and HTJ2K's component transform, already give RGB; JPEG-LS keeps what was stored.
    ybr = ybr && JPEG_LS.has(syntax);
  }
  if (ybr && photometric.startsWith('YBR_FULL')) ycbcrToRgbInPlace(rgb);
  return rgb;
}
