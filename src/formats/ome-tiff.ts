// OME-TIFF: a TIFF whose first ImageDescription is OME-XML. The first Image's first plane is
// IFD 0 and its pyramid is IFD 0's SubIFDs (the OME-TIFF 6 pyramid convention). A brightfield
// RGB image is served as stored; a multi-channel (fluorescence) image serves its first channel
// as grayscale, with the channel list in `ome.channels`. Further Images named like "label" or
// "macro" become associated images. Level 0 is IFD 0's image, so a level-0 tile can be served
// before the SubIFDs are read (`openBase`).

import { UnsupportedFormat } from '../errors.js';
import { associatedGrid } from './associated.js';
import { firstDirectoryBase } from './base-level.js';
import type { OpenSlideOptions, SlideProbe } from './format.js';
import { pyramidGrids } from './generic-tiff.js';
import { levelsFromGrids, slideOf } from './levels.js';
import { isOmeXml, parseOmeXml, physicalSizeMicrons, type OmeMetadata } from './ome-xml.js';
import type { ImageGrid, Slide, SlideProperties } from './slide.js';
import { iccProfile, tiffProperties } from './tiff-properties.js';
import { Tag } from './tiff/constants.js';
import type { TiffFile } from './tiff/tiff-file.js';

export const vendor = 'ome-tiff';

const ASSOCIATED_NAMES = ['label', 'macro', 'thumbnail'] as const;

export async function detect(probe: SlideProbe): Promise<boolean> {
  const tiff = await probe.head();
  if (!tiff) return false;
  const description = await tiff.string(tiff.ifds[0], Tag.ImageDescription, probe.signal);
  return description !== undefined && isOmeXml(description);
}

/** Level 0: the first directory's image (its pyramid levels are its SubIFDs). */
export const openBase = firstDirectoryBase;

export async function open(probe: SlideProbe, options: OpenSlideOptions = {}): Promise<Slide> {
  const signal = options.signal ?? probe.signal;
  const tiff = await probe.tiff(signal);
  if (!tiff) throw new UnsupportedFormat(`${probe.source.key}: not a TIFF file`);
  const first = tiff.ifds[0];
  const ome = parseOmeXml((await tiff.string(first, Tag.ImageDescription, signal)) ?? '');

  // Planes of other channels, z or t follow IFD 0 in the main chain: they are not levels.
  const grids = await pyramidGrids(tiff, first, [], signal, probe.baseGrid);
  const raw = { ...(await tiffProperties(tiff, first, signal)), ...omeProperties(ome) };
  const properties: SlideProperties = { vendor, background_color: 'FFFFFF', raw };
  const pixels = ome.images[0]?.pixels ?? {};
  const mppX = physicalSizeMicrons(pixels.PhysicalSizeX, pixels.PhysicalSizeXUnit);
  const mppY = physicalSizeMicrons(pixels.PhysicalSizeY, pixels.PhysicalSizeYUnit);
  if (mppX !== undefined) properties.mpp_x = mppX;
  if (mppY !== undefined) properties.mpp_y = mppY;
  const magnification = Number(ome.objectives[0]?.NominalMagnification);
  if (Number.isFinite(magnification) && magnification > 0) properties.objective_power = magnification;
  const icc = await iccProfile(tiff, first, signal);
  if (icc) properties.icc_profile = icc;

  const levels = levelsFromGrids(grids);
  return slideOf(vendor, probe.source, levels, await associatedImages(tiff, ome, signal), properties);
}

function omeProperties(ome: OmeMetadata): Record<string, string> {
  const raw: Record<string, string> = {};
  const image = ome.images[0];
  if (!image) return raw;
  if (image.attributes.Name !== undefined) raw['ome.Image.Name'] = image.attributes.Name;
  for (const [name, value] of Object.entries(image.pixels)) {
    if (name !== 'ID' && name !== 'xmlns') raw[`ome.Pixels.${name}`] = value;
  }
  const channels = image.channels.map((channel, i) => channel.Name ?? channel.ID ?? `Channel ${i}`);
  raw['ome.channels'] = JSON.stringify(channels);
  image.channels.forEach((channel, i) => {
    for (const [name, value] of Object.entries(channel)) raw[`ome.channel[${i}].${name}`] = value;
  });
  const objective = ome.objectives[0];
  if (objective?.NominalMagnification !== undefined) {
    raw['ome.Objective.NominalMagnification'] = objective.NominalMagnification;
  }
  return raw;
}

/** Images after the first whose name says label / macro / thumbnail, from the IFD their TiffData names. */
async function associatedImages(
  tiff: TiffFile,
  ome: OmeMetadata,
  signal: AbortSignal | undefined,
): Promise<Map<string, ImageGrid>> {
  const out = new Map<string, ImageGrid>();
  for (const image of ome.images.slice(1)) {
    const label = (image.attributes.Name ?? '').toLowerCase();
    const name = ASSOCIATED_NAMES.find((candidate) => label.includes(candidate));
    const ifdIndex = Number(image.tiffData[0]?.IFD ?? NaN);
    const ifd = Number.isInteger(ifdIndex) && ifdIndex > 0 ? tiff.ifds[ifdIndex] : undefined;
    if (!name || !ifd || out.has(name)) continue;
    const grid = await associatedGrid(tiff, ifd, signal);
    if (grid) out.set(name, grid);
  }
  return out;
}
