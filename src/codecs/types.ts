// What a format tells the codecs about one stored image's tiles, and what the codecs give back.
// Formats describe encodings in TIFF terms (compression and photometric codes from TIFF 6.0 and
// its registered extensions); other containers (DICOM WSI, NDPI) map theirs onto these.

/** TIFF Compression tag values the registry knows. */
export const Compression = {
  None: 1,
  LZW: 5,
  OldJPEG: 6,
  JPEG: 7,
  Deflate: 8,
  PackBits: 32773,
  AdobeDeflate: 32946,
  /** Aperio JPEG 2000, YCbCr components. */
  AperioJP2KYCbCr: 33003,
  /** Aperio JPEG 2000, RGB components. */
  AperioJP2KRGB: 33005,
  JPEG2000: 34712,
  ZSTD: 50000,
  WebP: 50001,
  /**
   * Not TIFF codes: DICOM transfer syntaxes that TIFF has no compression for, numbered above
   * the 16-bit TIFF range so they can never collide with a TIFF file's tag value.
   */
  JPEGLS: 0x10050,
  HTJ2K: 0x10201,
} as const;

/** TIFF PhotometricInterpretation values. */
export const Photometric = {
  MinIsWhite: 0,
  MinIsBlack: 1,
  RGB: 2,
  Palette: 3,
  YCbCr: 6,
} as const;

/** How the stored tiles of one image are encoded. */
export interface TileEncoding {
  compression: number;
  photometric: number;
  samplesPerPixel: number;
  /** Bits per sample (one value per sample, as in the TIFF tag). */
  bitsPerSample: number[];
  /** TIFF SampleFormat: 1 unsigned int (default), 2 signed, 3 float. */
  sampleFormat: number;
  /** 1 chunky (interleaved), 2 planar. */
  planarConfiguration: number;
  /** TIFF Predictor: 1 none, 2 horizontal differencing, 3 floating point. */
  predictor: number;
  /** JPEGTables (tag 347): an abbreviated table-specification stream to splice into each tile. */
  jpegTables?: Uint8Array;
  /** YCbCrSubSampling (tag 530), when the photometric is YCbCr. */
  ycbcrSubsampling?: [number, number];
  /** ExtraSamples (tag 338): 1 associated alpha, 2 unassociated alpha. */
  extraSamples?: number[];
  /**
   * Byte order of multi-byte samples in uncompressed/LZW/Deflate/ZSTD/PackBits data: the TIFF
   * file's byte order (`II` = true). Only matters for 16-bit samples; true when absent.
   */
  littleEndian?: boolean;
}

/** Decoded pixels, 8 bits per channel, interleaved, row-major, no padding. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 grayscale, 3 RGB, 4 RGBA (alpha not premultiplied). */
  channels: 1 | 3 | 4;
}

/** Per-call options of the decoders. */
export interface DecodeOptions {
  /** Abandons the decode (queued work is dropped; the promise rejects with `Cancelled`). */
  signal?: AbortSignal;
}
