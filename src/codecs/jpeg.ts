// JPEG tiles (TIFF compression 7): building a standalone stream from a stored tile, and decoding
// it. TIFF stores the quantisation/Huffman tables once per image (JPEGTables, an abbreviated
// stream SOI..EOI) and leaves them out of each tile; and slides such as Aperio's store RGB
// rather than YCbCr samples without saying so inside the stream, which every standard decoder
// (libjpeg, browsers) then mistakes for YCbCr. `prepareJpeg` fixes both with one copy and is
// also what serves stored tiles to browsers without re-encoding.

import sharp from 'sharp';
import { DecodeError, UnsupportedFormat } from '../errors.js';
import { decodeWithSharp } from './sharp-decode.js';
import { Photometric } from './types.js';
import type { DecodedImage, TileEncoding } from './types.js';

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const APP0 = 0xe0;
const APP14 = 0xee;

/**
 * Adobe APP14 with transform 0 ("no colour transform"): per libjpeg's jdmarker.c/jdapimin.c a
 * 3-component stream with this marker (and no JFIF APP0) is decoded as RGB.
 */
const ADOBE_RGB_SEGMENT = Uint8Array.of(
  0xff, APP14, 0x00, 0x0e,
  0x41, 0x64, 0x6f, 0x62, 0x65, // "Adobe"
  0x00, 0x64, // DCTEncodeVersion 100
  0x00, 0x00, 0x00, 0x00, // flags0, flags1
  0x00, // transform: 0 = RGB / CMYK as stored
); // prettier-ignore

/** The part of JPEGTables between its SOI and EOI (tolerating either being absent). */
function tableBody(tables: Uint8Array | undefined): Uint8Array {
  if (tables === undefined || tables.length === 0) return new Uint8Array(0);
  let start = 0;
  let end = tables.length;
  if (end >= 2 && tables[0] === 0xff && tables[1] === SOI) start = 2;
  if (end - start >= 2 && tables[end - 2] === 0xff && tables[end - 1] === EOI) end -= 2;
  return tables.subarray(start, end);
}

/**
 * The header segments of `stream` up to SOS or EOI: each marker with its position and length
 * field. Lenient (a scan over possibly odd streams, not a validator): it stops at the first
 * byte that is not a marker or at a truncated segment.
 */
function* headerSegments(stream: Uint8Array): Generator<{ marker: number; pos: number; length: number }> {
  let pos = 2;
  while (pos + 4 <= stream.length) {
    if (stream[pos] !== 0xff) return;
    const marker = stream[pos + 1];
    if (marker === 0xff) {
      pos++; // fill byte
      continue;
    }
    if (marker === SOS || marker === EOI) return;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2; // markers without a length
      continue;
    }
    const length = (stream[pos + 2] << 8) | stream[pos + 3];
    yield { marker, pos, length };
    pos += 2 + length;
  }
}

/** Whether the header of `stream` (before SOS) already carries a JFIF or Adobe marker. */
function hasColourMarker(stream: Uint8Array): boolean {
  for (const { marker, pos, length } of headerSegments(stream)) {
    if (marker === APP14 && length >= 7 && pos + 9 <= stream.length) {
      if (String.fromCharCode(...stream.subarray(pos + 4, pos + 9)) === 'Adobe') return true;
    }
    if (marker === APP0 && length >= 7 && pos + 8 <= stream.length) {
      if (String.fromCharCode(...stream.subarray(pos + 4, pos + 8)) === 'JFIF') return true;
    }
  }
  return false;
}

/** Whether a baseline/sequential JPEG's chroma is subsampled (SOF sampling factors differ). */
export function chromaSubsampled(stream: Uint8Array): boolean {
  for (const { marker, pos } of headerSegments(stream)) {
    if (marker >= 0xc0 && marker <= 0xc3 && pos + 10 <= stream.length) {
      const components = stream[pos + 9];
      const factors = new Set<number>();
      for (let c = 0; c < components && pos + 12 + c * 3 <= stream.length; c++)
        factors.add(stream[pos + 11 + c * 3]);
      return factors.size > 1;
    }
  }
  return false;
}

/**
 * Builds a complete, standalone JPEG stream from one stored tile: SOI, an Adobe APP14
 * (transform 0) when the TIFF says the samples are RGB, the image's JPEGTables, then the rest of
 * the tile. Returns the tile itself (no copy) when nothing needs adding. Throws `DecodeError` if
 * the tile does not start with SOI.
 */
export function prepareJpeg(
  tile: Uint8Array,
  encoding: Pick<TileEncoding, 'jpegTables' | 'photometric' | 'samplesPerPixel'>,
): Uint8Array {
  if (tile.length < 4 || tile[0] !== 0xff || tile[1] !== SOI) {
    throw new DecodeError('JPEG tile does not start with an SOI marker');
  }
  const tables = tableBody(encoding.jpegTables);
  // A JFIF marker would still force YCbCr in libjpeg; such tiles are rare enough to pass as-is.
  const adobe =
    encoding.photometric === Photometric.RGB && encoding.samplesPerPixel === 3 && !hasColourMarker(tile)
      ? ADOBE_RGB_SEGMENT
      : undefined;
  if (tables.length === 0 && adobe === undefined) return tile;
  const adobeLength = adobe?.length ?? 0;
  const out = new Uint8Array(tile.length + adobeLength + tables.length);
  out[0] = 0xff;
  out[1] = SOI;
  if (adobe) out.set(adobe, 2);
  out.set(tables, 2 + adobeLength);
  out.set(tile.subarray(2), 2 + adobeLength + tables.length);
  return out;
}

/**
 * Whether a complete JPEG stream (from `prepareJpeg`) decodes without any libjpeg error or warning.
 * Checked before a stored tile is served as is: libjpeg only warns on noise in the entropy-coded
 * data and on a stream that ends early, so a stream that warns is not handed to clients unchecked
 * (the caller decodes it like any other tile instead). `maxPixels` bounds the size it may claim.
 */
export async function decodesCleanly(stream: Uint8Array, maxPixels: number): Promise<boolean> {
  try {
    await sharp(stream, { failOn: 'warning', limitInputPixels: Math.max(1, Math.floor(maxPixels)) })
      .raw()
      .toBuffer();
    return true;
  } catch {
    return false;
  }
}

/**
 * Decodes one JPEG tile to 8-bit gray or RGB. `maxPixels` bounds the size the stream may claim.
 */
export async function decodeJpeg(
  tile: Uint8Array,
  encoding: TileEncoding,
  maxPixels: number,
): Promise<DecodedImage> {
  const bits = encoding.bitsPerSample[0] ?? 8;
  if (bits !== 8) throw new UnsupportedFormat(`${bits}-bit JPEG is not supported`);
  const spp = encoding.samplesPerPixel;
  const { photometric } = encoding;
  const colour = (photometric === Photometric.RGB || photometric === Photometric.YCbCr) && spp === 3;
  const gray =
    (photometric === Photometric.MinIsBlack || photometric === Photometric.MinIsWhite) && spp === 1;
  if (!colour && !gray) {
    throw new UnsupportedFormat(`JPEG with photometric ${photometric} and ${spp} samples is not supported`);
  }
  const image = await decodeWithSharp(prepareJpeg(tile, encoding), maxPixels, 'JPEG', gray);
  if (photometric === Photometric.MinIsWhite && image.channels === 1) {
    for (let i = 0; i < image.data.length; i++) image.data[i] = 255 - image.data[i];
  }
  return image;
}
