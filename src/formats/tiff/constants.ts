// TIFF 6.0 / BigTIFF numbers the reader needs: tag ids, field types and their sizes, and the sanity
// limits every structure is checked against before it is trusted. Tag names follow the TIFF 6.0
// specification (and the Adobe / Aperio extensions where noted).

export const Tag = {
  NewSubfileType: 254,
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  PhotometricInterpretation: 262,
  DocumentName: 269,
  ImageDescription: 270,
  Make: 271,
  Model: 272,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  XResolution: 282,
  YResolution: 283,
  PlanarConfiguration: 284,
  XPosition: 286,
  YPosition: 287,
  ResolutionUnit: 296,
  Software: 305,
  DateTime: 306,
  Artist: 315,
  HostComputer: 316,
  Predictor: 317,
  TileWidth: 322,
  TileLength: 323,
  TileOffsets: 324,
  TileByteCounts: 325,
  SubIFDs: 330,
  ExtraSamples: 338,
  SampleFormat: 339,
  JPEGTables: 347,
  YCbCrSubSampling: 530,
  Copyright: 33432,
  /** ICC profile (Adobe "InterColorProfile"). */
  ICCProfile: 34675,
  /** Hamamatsu NDPI marker tag: its presence means the file is NDPI, not a plain TIFF. */
  NdpiFormatFlag: 65420,
} as const;

/** NewSubfileType bits (TIFF 6.0 section 8). */
export const SubfileType = {
  ReducedImage: 1,
  Page: 2,
  /** Transparency mask of another image (COG masks): never a pyramid level. */
  Mask: 4,
} as const;

/** Field type -> bytes per value (TIFF 6.0 section 2 plus BigTIFF's LONG8/SLONG8/IFD8). */
export const TYPE_SIZES: Readonly<Record<number, number>> = {
  1: 1, // BYTE
  2: 1, // ASCII
  3: 2, // SHORT
  4: 4, // LONG
  5: 8, // RATIONAL
  6: 1, // SBYTE
  7: 1, // UNDEFINED
  8: 2, // SSHORT
  9: 4, // SLONG
  10: 8, // SRATIONAL
  11: 4, // FLOAT
  12: 8, // DOUBLE
  13: 4, // IFD
  16: 8, // LONG8
  17: 8, // SLONG8
  18: 8, // IFD8
};

export const FieldType = {
  BYTE: 1,
  ASCII: 2,
  SHORT: 3,
  LONG: 4,
  RATIONAL: 5,
  SBYTE: 6,
  UNDEFINED: 7,
  SSHORT: 8,
  SLONG: 9,
  SRATIONAL: 10,
  FLOAT: 11,
  DOUBLE: 12,
  IFD: 13,
  LONG8: 16,
  SLONG8: 17,
  IFD8: 18,
} as const;

/** Limits that bound the work and memory any file can make the reader spend. */
export const Limits = {
  /** Directories in the main chain plus SubIFDs; real slides have < 20. */
  maxDirectories: 4096,
  /** Entries in one directory; real ones have < 100. */
  maxEntriesPerIfd: 4096,
  /** SubIFDs listed by one directory. */
  maxSubIfds: 1024,
  /** Values of a numeric tag read whole (BitsPerSample, SubIFDs, ...), not an offset array. */
  maxNumericValues: 4096,
  /** Largest tag value read whole (ImageDescription, ICC, JPEGTables, OME-XML). */
  maxValueBytes: 16 * 1024 * 1024,
  /** Image width / height. */
  maxDimension: 2 ** 31 - 1,
  minTileSize: 16,
  maxTileSize: 16384,
  /** One stored tile or strip; a larger byte count is corruption, not a tile. */
  maxTileBytes: 64 * 1024 * 1024,
  /** Stripped images are served only up to this many pixels (a strip is read whole). */
  maxStrippedPixels: 64 * 1024 * 1024,
} as const;
