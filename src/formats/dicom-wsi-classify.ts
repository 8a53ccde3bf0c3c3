// Decides what each instance of a DICOM WSI series is — a pyramid level (VOLUME), the LABEL,
// the OVERVIEW or the THUMBNAIL — from every piece of evidence an instance carries, because
// files from the field omit or vary ImageType (PS3.3 C.8.12.4.1.1):
//   1. ImageType value 3, else the Frame Type of the shared WSI frame type functional group;
//   2. free-text descriptions (ImageComments, DerivationDescription) naming label/macro/overview/thumbnail;
//   3. geometry: the tiled instance with the largest total pixel matrix is the base level; an
//      instance with the base's aspect ratio is a lower level, a wide one (≥ 2:1, the whole glass)
//      the overview, any other the label.

import { DataSet } from '../dicom/dataset.js';
import { Tag, tag } from '../dicom/tags.js';

export type Flavor = 'VOLUME' | 'LABEL' | 'OVERVIEW' | 'THUMBNAIL';
/** `OTHER`: an instance none of the images can use (a second focal plane's separate instance). */
export type Classification = Flavor | 'OTHER';

const FLAVORS = new Set<string>(['VOLUME', 'LABEL', 'OVERVIEW', 'THUMBNAIL']);

// Elements read only here (PS3.6); the generic parser keeps them as raw bytes under implicit VR,
// which DataSet.string() reads as text all the same.
const WsiFrameTypeSequence = tag(0x0040, 0x0710);
const FrameType = tag(0x0008, 0x9007);
const ImageComments = tag(0x0020, 0x4000);
const DerivationDescription = tag(0x0008, 0x2111);

/** What the classifier needs of one instance. */
export interface ClassifiableInstance {
  dataset: DataSet;
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  frames: number;
  source: { key: string };
}

/** ImageType value 3, or the shared Frame Type's, when it names one of the four flavours. */
export function declaredFlavor(ds: DataSet): Flavor | undefined {
  const fromImageType = (ds.strings(Tag.ImageType)[2] ?? '').toUpperCase();
  if (FLAVORS.has(fromImageType)) return fromImageType as Flavor;
  const frameType = ds.item(Tag.SharedFunctionalGroupsSequence)?.item(WsiFrameTypeSequence);
  const fromFrameType = (frameType?.strings(FrameType)[2] ?? '').toUpperCase();
  if (FLAVORS.has(fromFrameType)) return fromFrameType as Flavor;
  return undefined;
}

/** A flavour named in the instance's own descriptions ("Label image", "Macro", ...). */
export function describedFlavor(ds: DataSet): Flavor | undefined {
  const text = [ImageComments, DerivationDescription].map((t) => ds.string(t) ?? '').join(' ');
  if (/\blabel\b/i.test(text)) return 'LABEL';
  if (/\b(overview|macro)\b/i.test(text)) return 'OVERVIEW';
  if (/\bthumb(nail)?\b/i.test(text)) return 'THUMBNAIL';
  return undefined;
}

function isTiled(i: ClassifiableInstance): boolean {
  return i.frames > 1 || i.width > i.tileWidth || i.height > i.tileHeight;
}

/** Base level candidates first: tiled, then by total pixels, frames, tile area, key. */
function baseOrder(a: ClassifiableInstance, b: ClassifiableInstance): number {
  return (
    Number(isTiled(b)) - Number(isTiled(a)) ||
    b.width * b.height - a.width * a.height ||
    b.frames - a.frames ||
    b.tileWidth * b.tileHeight - a.tileWidth * a.tileHeight ||
    (a.source.key < b.source.key ? -1 : a.source.key > b.source.key ? 1 : 0)
  );
}

/** True when `i` has `base`'s aspect ratio within rounding (a level's sides are rounded to pixels). */
function sameAspect(i: ClassifiableInstance, base: ClassifiableInstance): boolean {
  const expectedHeight = (i.width * base.height) / base.width;
  return Math.abs(expectedHeight - i.height) <= Math.max(1.5, 0.02 * i.height);
}

/**
 * The classification of each instance (same order as `instances`). Declared and described
 * flavours are taken as they are; the rest are placed by geometry against the base level.
 * Undeclared instances of one level size join only when they share the ConcatenationUID of that
 * level's first instance; another single-frame image of that size is a thumbnail candidate.
 */
export function classifyInstances(instances: readonly ClassifiableInstance[]): Classification[] {
  const out: Classification[] = instances.map(
    (i) => declaredFlavor(i.dataset) ?? describedFlavor(i.dataset) ?? 'OTHER',
  );
  const undecided = instances.filter((_, k) => out[k] === 'OTHER');
  if (undecided.length === 0) return out;
  const volumes = instances.filter((_, k) => out[k] === 'VOLUME');
  const base = [...(volumes.length > 0 ? volumes : undecided)].sort(baseOrder)[0];
  const concatenationOf = (i: ClassifiableInstance) => i.dataset.string(Tag.ConcatenationUid);
  // Level sizes already taken, with the concatenation that owns them ('' for declared volumes,
  // which join whatever shares their size, as before).
  const levels = new Map<string, string | undefined>();
  for (const v of volumes) levels.set(`${v.width}x${v.height}`, '');
  for (const i of [...undecided].sort(baseOrder)) {
    const k = instances.indexOf(i);
    if (i === base || sameAspect(i, base)) {
      const size = `${i.width}x${i.height}`;
      const owner = levels.get(size);
      if (!levels.has(size)) {
        levels.set(size, concatenationOf(i));
        out[k] = 'VOLUME';
      } else if (owner === '' || (owner !== undefined && owner === concatenationOf(i))) {
        out[k] = 'VOLUME';
      } else {
        out[k] = isTiled(i) ? 'OTHER' : 'THUMBNAIL';
      }
    } else {
      const aspect = Math.max(i.width, i.height) / Math.min(i.width, i.height);
      out[k] = aspect >= 2 ? 'OVERVIEW' : 'LABEL';
    }
  }
  return out;
}
