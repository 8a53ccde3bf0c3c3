// The properties every TIFF-based slide shares, named as OpenSlide names them (`tiff.Make`,
// `tiff.XResolution`, `tiff.ResolutionUnit`, ...; openslide-decode-tifflike.c), plus the
// microns-per-pixel that the resolution tags imply and the embedded ICC profile.

import { CorruptFile } from '../errors.js';
import { Tag } from './tiff/constants.js';
import type { Ifd } from './tiff/ifd.js';
import type { TiffFile } from './tiff/tiff-file.js';

const STRING_PROPERTIES: ReadonlyArray<[string, number]> = [
  ['tiff.ImageDescription', Tag.ImageDescription],
  ['tiff.Make', Tag.Make],
  ['tiff.Model', Tag.Model],
  ['tiff.Software', Tag.Software],
  ['tiff.DateTime', Tag.DateTime],
  ['tiff.Artist', Tag.Artist],
  ['tiff.HostComputer', Tag.HostComputer],
  ['tiff.Copyright', Tag.Copyright],
  ['tiff.DocumentName', Tag.DocumentName],
];

const FLOAT_PROPERTIES: ReadonlyArray<[string, number]> = [
  ['tiff.XResolution', Tag.XResolution],
  ['tiff.YResolution', Tag.YResolution],
  ['tiff.XPosition', Tag.XPosition],
  ['tiff.YPosition', Tag.YPosition],
];

const RESOLUTION_UNITS: Readonly<Record<number, string>> = { 1: 'none', 2: 'inch', 3: 'centimeter' };

/** `tiff.*` properties of `ifd`. Like OpenSlide, ResolutionUnit defaults to `inch`. */
export async function tiffProperties(
  tiff: TiffFile,
  ifd: Ifd,
  signal?: AbortSignal,
): Promise<Record<string, string>> {
  const raw: Record<string, string> = {};
  for (const [name, tag] of STRING_PROPERTIES) {
    const value = await optionalString(tiff, ifd, tag, signal);
    if (value !== undefined) raw[name] = value;
  }
  for (const [name, tag] of FLOAT_PROPERTIES) {
    const value = await optionalNumber(tiff, ifd, tag, signal);
    if (value !== undefined && Number.isFinite(value)) raw[name] = String(value);
  }
  const unit = (await optionalNumber(tiff, ifd, Tag.ResolutionUnit, signal)) ?? 2;
  raw['tiff.ResolutionUnit'] = RESOLUTION_UNITS[unit] ?? 'unknown';
  return raw;
}

/**
 * Microns per pixel from XResolution / YResolution, only when ResolutionUnit is centimeter, as
 * OpenSlide 4 does for generic TIFF: slide writers (libvips, scanners) record real resolutions
 * in pixels per centimetre, while inch resolutions are nearly always a 72 dpi placeholder that
 * would report a nonsensical 352.8 µm per pixel.
 */
export async function resolutionMpp(
  tiff: TiffFile,
  ifd: Ifd,
  signal?: AbortSignal,
): Promise<{ mpp_x?: number; mpp_y?: number }> {
  const unit = (await optionalNumber(tiff, ifd, Tag.ResolutionUnit, signal)) ?? 2;
  if (unit !== 3) return {};
  const micronsPerUnit = 10_000;
  const out: { mpp_x?: number; mpp_y?: number } = {};
  const x = await optionalNumber(tiff, ifd, Tag.XResolution, signal);
  const y = await optionalNumber(tiff, ifd, Tag.YResolution, signal);
  if (x !== undefined && Number.isFinite(x) && x > 0) out.mpp_x = micronsPerUnit / x;
  if (y !== undefined && Number.isFinite(y) && y > 0) out.mpp_y = micronsPerUnit / y;
  return out;
}

/** The ICC profile (tag 34675) bytes, when present. */
export async function iccProfile(
  tiff: TiffFile,
  ifd: Ifd,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  const bytes = await tiff.bytes(ifd, Tag.ICCProfile, signal).catch(ignoreCorrupt);
  return bytes?.slice();
}

/** Informational tags: a corrupt one (wrong type, value outside the file) is left out, not fatal. */
function optionalNumber(
  tiff: TiffFile,
  ifd: Ifd,
  tag: number,
  signal?: AbortSignal,
): Promise<number | undefined> {
  return tiff.number(ifd, tag, signal).catch(ignoreCorrupt);
}

function optionalString(
  tiff: TiffFile,
  ifd: Ifd,
  tag: number,
  signal?: AbortSignal,
): Promise<string | undefined> {
  return tiff.string(ifd, tag, signal).catch(ignoreCorrupt);
}

/** A `.catch` handler: a `CorruptFile` becomes undefined, any other error stays an error. */
export function ignoreCorrupt(error: unknown): undefined {
  if (error instanceof CorruptFile) return undefined;
  throw error;
}
