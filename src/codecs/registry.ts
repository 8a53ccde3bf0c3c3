// The decoders MedStream knows, keyed by TIFF compression code (geotiff.js-style registry).
// Byte-stream codecs (none, LZW, Deflate, ZSTD, PackBits) only restore the stored sample bytes
// and share raster.ts for predictor, bit depth and photometric; image codecs (JPEG, WebP,
// JPEG 2000) decode straight to pixels.

import type { CharlsOpenjphDecoder } from './charls-openjph.js';
import { decodeDeflate } from './deflate.js';
import { decodeJpeg } from './jpeg.js';
import type { Jp2kDecoder } from './jp2k.js';
import { decodeLzw } from './lzw.js';
import { decodePackBits } from './packbits.js';
import { sampleLayout, samplesToImage } from './raster.js';
import { decodeWithSharp } from './sharp-decode.js';
import { Compression } from './types.js';
import type { DecodedImage, TileEncoding } from './types.js';
import { decodeZstd } from './zstd.js';

/** What a decoder may use besides the tile itself. */
export interface DecodeContext {
  /** Largest decoded tile in bytes. */
  maxDecodedBytes: number;
  jp2k: Jp2kDecoder;
  /** JPEG-LS and HTJ2K (DICOM only). */
  charlsOpenjph: CharlsOpenjphDecoder;
  signal?: AbortSignal;
}

export type TileDecoder = (
  bytes: Uint8Array,
  encoding: TileEncoding,
  width: number,
  height: number,
  context: DecodeContext,
) => Promise<DecodedImage>;

/** Restores `needed` stored sample bytes (more may come back; they are ignored). */
type SampleDecompressor = (bytes: Uint8Array, needed: number) => Uint8Array | Promise<Uint8Array>;

function sampleCodec(decompress: SampleDecompressor): TileDecoder {
  return async (bytes, encoding, width, height) => {
    const layout = sampleLayout(encoding, width, height);
    const samples = await decompress(bytes, layout.byteLength);
    return samplesToImage(samples, encoding, layout, width, height);
  };
}

const jpeg: TileDecoder = (bytes, encoding, _width, _height, context) =>
  decodeJpeg(bytes, encoding, context.maxDecodedBytes / 3);

const jp2k: TileDecoder = (bytes, encoding, _width, _height, context) =>
  context.jp2k.decode(bytes, encoding, context.maxDecodedBytes, context.signal);

const charlsOpenjph: TileDecoder = (bytes, encoding, _width, _height, context) =>
  context.charlsOpenjph.decode(bytes, encoding, context.maxDecodedBytes, context.signal);

const webp: TileDecoder = (bytes, _encoding, _width, _height, context) =>
  decodeWithSharp(bytes, context.maxDecodedBytes / 4, 'WebP');

const deflate = sampleCodec((bytes, needed) => decodeDeflate(bytes, needed));

const decoders = new Map<number, TileDecoder>([
  // Uncompressed data is copied: the predictor is undone in place and must not touch the caller's bytes.
  [Compression.None, sampleCodec((bytes, needed) => bytes.slice(0, needed))],
  [Compression.LZW, sampleCodec((bytes, needed) => decodeLzw(bytes, needed))],
  [Compression.Deflate, deflate],
  [Compression.AdobeDeflate, deflate],
  [Compression.PackBits, sampleCodec((bytes, needed) => decodePackBits(bytes, needed))],
  [Compression.ZSTD, sampleCodec((bytes, needed) => decodeZstd(bytes, needed))],
  [Compression.JPEG, jpeg],
  [Compression.WebP, webp],
  [Compression.JPEG2000, jp2k],
  [Compression.AperioJP2KYCbCr, jp2k],
  [Compression.AperioJP2KRGB, jp2k],
  // DICOM transfer syntaxes without a TIFF code (pseudo codes above 0xFFFF).
  [Compression.JPEGLS, charlsOpenjph],
  [Compression.HTJ2K, charlsOpenjph],
]);

export function decoderFor(compression: number): TileDecoder | undefined {
  return decoders.get(compression);
}

/** Compression codes with a decoder, for diagnostics (`medstream check`). */
export function supportedCompressions(): number[] {
  return [...decoders.keys()];
}
