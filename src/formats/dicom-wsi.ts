// DICOM WSI (VL Whole Slide Microscopy Image Storage, PS3.3 A.32.8): a slide is the set of
// instances sharing a SeriesInstanceUID. VOLUME instances are pyramid levels (one level per
// TotalPixelMatrixColumns x Rows; several instances of one level — a concatenation — are
// joined), LABEL / OVERVIEW / THUMBNAIL instances are the `label`, `macro` and `thumbnail`
// associated images. Frames are tiles: TILED_FULL in row-major order, TILED_SPARSE placed by
// each frame's Plane Position (Slide); tiles no frame covers render as background.
//
//   open(probe)         one instance (+ same-series siblings in its folder, when offered)
//   openSeries(sources) every DICOM object of a folder (a `cases/42/` slide id)
//     -> parseDicomHeader per instance (dicom/parser.ts) -> frameTable (dicom/frames.ts) -> grids
//
// Each instance costs its header's windows (one 64 KiB read for usual headers) and nothing that
// grows with its pixel data; frames are located lazily when a tile is read.

import { chromaSubsampled, prepareJpeg } from '../codecs/jpeg.js';
import { Compression, Photometric, type TileEncoding } from '../codecs/types.js';
import { readDeferred, type DataSet } from '../dicom/dataset.js';
import { frameTable, type FrameTable } from '../dicom/frames.js';
import { isDicomPart10, parseDicomHeader, type DicomHeader } from '../dicom/parser.js';
import { Tag, TransferSyntax, VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE } from '../dicom/tags.js';
import { BadRequest, CorruptFile, UnsupportedFormat } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { classifyInstances, declaredFlavor } from './dicom-wsi-classify.js';
import type { OpenSlideOptions, SlideProbe } from './format.js';
import { levelsFromGrids, slideOf } from './levels.js';
import type { ImageGrid, Slide, SlideProperties } from './slide.js';

export const vendor = 'dicom-wsi';

/** Instances of one series read at most (a folder with more is refused). */
export const MAX_INSTANCES = 256;
/** Headers parsed at the same time when opening a series (one wave for usual series). */
const OPEN_CONCURRENCY = 16;
/** Tiles of one level at most (the frame map is two Int32Arrays of this many entries). */
const MAX_TILES = 64 * 1024 * 1024;

const ASSOCIATED_NAMES: Record<string, string> = {
  LABEL: 'label',
  OVERVIEW: 'macro',
  THUMBNAIL: 'thumbnail',
};

/** Properties that identify the patient or the study: public only with `--expose-phi`. */
const PHI_TAGS: [string, number][] = [
  ['PatientName', Tag.PatientName],
  ['PatientID', Tag.PatientId],
  ['PatientBirthDate', Tag.PatientBirthDate],
  ['PatientSex', Tag.PatientSex],
  ['StudyInstanceUID', Tag.StudyInstanceUid],
  ['SeriesInstanceUID', Tag.SeriesInstanceUid],
  ['StudyID', Tag.StudyId],
  ['StudyDate', Tag.StudyDate],
  ['StudyDescription', Tag.StudyDescription],
  ['AccessionNumber', Tag.AccessionNumber],
  ['ReferringPhysicianName', Tag.ReferringPhysicianName],
  ['InstitutionName', Tag.InstitutionName],
  ['ContainerIdentifier', Tag.ContainerIdentifier],
];
const PUBLIC_TAGS: [string, number][] = [
  ['Manufacturer', Tag.Manufacturer],
  ['ManufacturerModelName', Tag.ManufacturerModelName],
  ['DeviceSerialNumber', Tag.DeviceSerialNumber],
  ['SoftwareVersions', Tag.SoftwareVersions],
  ['SeriesDescription', Tag.SeriesDescription],
  ['ImageType', Tag.ImageType],
  ['PhotometricInterpretation', Tag.PhotometricInterpretation],
  ['DimensionOrganizationType', Tag.DimensionOrganizationType],
  ['TotalPixelMatrixColumns', Tag.TotalPixelMatrixColumns],
  ['TotalPixelMatrixRows', Tag.TotalPixelMatrixRows],
  ['Columns', Tag.Columns],
  ['Rows', Tag.Rows],
];

/** One parsed instance. */
interface Instance {
  source: ByteSource;
  header: DicomHeader;
  dataset: DataSet;
  seriesUid: string;
  /** VOLUME, LABEL, OVERVIEW, THUMBNAIL as declared (ImageType value 3 or Frame Type); '' if not. */
  flavor: string;
  tileWidth: number;
  tileHeight: number;
  width: number;
  height: number;
  frames: number;
  /** 0-based number of this instance's first frame in its concatenation. */
  frameOffset: number;
  sparse: boolean;
  encoding: TileEncoding;
  /** JPEG frames whose samples are RGB (not YCbCr): get an Adobe APP14 marker when not subsampled. */
  jpegRgb: boolean;
  table: FrameTable;
}

export async function detect(probe: SlideProbe): Promise<boolean> {
  return isDicomPart10(probe.source, probe.signal);
}

/**
 * Opens the instance in `probe` and, when `options.siblings` lists its folder, the other
 * instances of its series there. Siblings that are not DICOM, belong to another series, or fail
 * to parse are left out (the instance that was asked for must parse).
 */
export async function open(probe: SlideProbe, options: OpenSlideOptions = {}): Promise<Slide> {
  const signal = options.signal ?? probe.signal;
  const first = await openInstance(probe.source, signal);
  const instances = [first];
  if (options.siblings) {
    const others = (await options.siblings(signal)).filter((s) => s.key !== probe.source.key);
    if (others.length + 1 > MAX_INSTANCES) {
      throw new UnsupportedFormat(
        `${probe.source.key}: more than ${MAX_INSTANCES} objects beside it in its folder`,
      );
    }
    const parsed = await mapLimited(others, OPEN_CONCURRENCY, async (source) => {
      try {
        if (!(await isDicomPart10(source, signal))) return undefined;
        return await openInstance(source, signal);
      } catch (error) {
        if (error instanceof CorruptFile || error instanceof UnsupportedFormat) return undefined;
        throw error;
      }
    });
    for (const instance of parsed)
      if (instance && instance.seriesUid === first.seriesUid) instances.push(instance);
  }
  return buildSlide(instances, options);
}

/**
 * Opens a slide from every object of a folder: non-DICOM objects are skipped, every DICOM one
 * must parse; of several series, the one with the largest VOLUME image is the slide.
 */
export async function openSeries(
  sources: readonly ByteSource[],
  options: OpenSlideOptions = {},
): Promise<Slide> {
  const { signal } = options;
  if (sources.length > MAX_INSTANCES) {
    throw new UnsupportedFormat(`a DICOM series of more than ${MAX_INSTANCES} objects is not supported`);
  }
  const parsed = await mapLimited(sources, OPEN_CONCURRENCY, async (source) =>
    (await isDicomPart10(source, signal)) ? openInstance(source, signal) : undefined,
  );
  const instances = parsed.filter((i): i is Instance => i !== undefined);
  if (instances.length === 0) throw new UnsupportedFormat('the folder holds no DICOM instances');
  const volumes = instances.filter((i) => i.flavor === 'VOLUME');
  const largest = (volumes.length > 0 ? volumes : instances).reduce((a, b) =>
    b.width * b.height > a.width * a.height ? b : a,
  );
  return buildSlide(
    instances.filter((i) => i.seriesUid === largest.seriesUid),
    options,
  );
}

async function openInstance(source: ByteSource, signal: AbortSignal | undefined): Promise<Instance> {
  const key = source.key;
  const header = await parseDicomHeader(source, { signal });
  const ds = header.dataset;
  const sopClass = ds.string(Tag.SopClassUid) ?? header.meta.string(Tag.MediaStorageSopClassUid);
  if (sopClass !== VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE) {
    throw new UnsupportedFormat(
      `${key}: DICOM SOP class ${sopClass ?? '(none)'} is not VL Whole Slide Microscopy`,
    );
  }
  const seriesUid = ds.string(Tag.SeriesInstanceUid);
  if (!seriesUid) throw new CorruptFile(`${key}: no SeriesInstanceUID`);
  const flavor = declaredFlavor(ds) ?? '';
  const tileWidth = ds.number(Tag.Columns) ?? 0;
  const tileHeight = ds.number(Tag.Rows) ?? 0;
  const width = ds.number(Tag.TotalPixelMatrixColumns) ?? tileWidth;
  const height = ds.number(Tag.TotalPixelMatrixRows) ?? tileHeight;
  const frames = ds.number(Tag.NumberOfFrames) ?? 1;
  for (const [name, value] of [
    ['Columns', tileWidth],
    ['Rows', tileHeight],
    ['TotalPixelMatrixColumns', width],
    ['TotalPixelMatrixRows', height],
    ['NumberOfFrames', frames],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1 || value > 0x7fffffff) {
      throw new CorruptFile(`${key}: ${name} is ${value}`);
    }
  }
  const tiles = Math.ceil(width / tileWidth) * Math.ceil(height / tileHeight);
  if (tiles > MAX_TILES)
    throw new UnsupportedFormat(`${key}: ${tiles} tiles in one image is more than supported`);
  const { encoding, jpegRgb } = encodingOf(key, header);
  const bytesPerSample = encoding.bitsPerSample[0] / 8;
  const frameBytes = tileWidth * tileHeight * encoding.samplesPerPixel * bytesPerSample;
  const table = frameTable(source, header, frames, frameBytes);
  const organisation = ds.string(Tag.DimensionOrganizationType)?.toUpperCase();
  const sparse = organisation === 'TILED_SPARSE';
  const offset = ds.number(Tag.ConcatenationFrameOffsetNumber) ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0)
    throw new CorruptFile(`${key}: bad ConcatenationFrameOffsetNumber`);
  const instance: Instance = {
    source,
    header,
    dataset: ds,
    seriesUid,
    flavor,
    tileWidth,
    tileHeight,
    width,
    height,
    frames,
    frameOffset: offset,
    sparse,
    encoding,
    jpegRgb,
    table,
  };
  if (sparse) {
    const perFrame = ds.items(Tag.PerFrameFunctionalGroupsSequence);
    if (perFrame.length !== frames) {
      throw new CorruptFile(
        `${key}: TILED_SPARSE with ${perFrame.length} per-frame functional groups for ${frames} frames`,
      );
    }
  }
  return instance;
}

/** The tile encoding of an instance's frames, from its transfer syntax and image pixel module. */
function encodingOf(key: string, header: DicomHeader): { encoding: TileEncoding; jpegRgb: boolean } {
  const ds = header.dataset;
  const spp = ds.number(Tag.SamplesPerPixel) ?? 1;
  const bitsAllocated = ds.number(Tag.BitsAllocated) ?? 8;
  const photometric = (
    ds.string(Tag.PhotometricInterpretation) ?? (spp === 3 ? 'RGB' : 'MONOCHROME2')
  ).toUpperCase();
  const planar = ds.number(Tag.PlanarConfiguration) ?? 0;
  const signed = (ds.number(Tag.PixelRepresentation) ?? 0) === 1;
  if (spp !== 1 && spp !== 3)
    throw new UnsupportedFormat(`${key}: ${spp} samples per pixel is not supported`);
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    throw new UnsupportedFormat(`${key}: ${bitsAllocated} bits allocated is not supported`);
  }
  const base = {
    samplesPerPixel: spp,
    bitsPerSample: Array<number>(spp).fill(bitsAllocated),
    sampleFormat: signed ? 2 : 1,
    planarConfiguration: planar === 1 ? 2 : 1,
    predictor: 1,
    littleEndian: true,
  };
  const mono = (): number => {
    if (photometric === 'MONOCHROME1') return Photometric.MinIsWhite;
    if (photometric === 'MONOCHROME2') return Photometric.MinIsBlack;
    throw new UnsupportedFormat(`${key}: photometric ${photometric} with one sample is not supported`);
  };
  const ts = header.transferSyntax;
  switch (ts) {
    case TransferSyntax.ImplicitVrLittleEndian:
    case TransferSyntax.ExplicitVrLittleEndian: {
      if (spp === 3 && photometric !== 'RGB') {
        throw new UnsupportedFormat(`${key}: uncompressed ${photometric} is not supported`);
      }
      const p = spp === 3 ? Photometric.RGB : mono();
      return { encoding: { ...base, compression: Compression.None, photometric: p }, jpegRgb: false };
    }
    case TransferSyntax.JpegBaseline:
    case TransferSyntax.JpegExtended: {
      if (bitsAllocated !== 8)
        throw new UnsupportedFormat(`${key}: ${bitsAllocated}-bit JPEG is not supported`);
      // The stream's own markers decide YCbCr vs RGB; frames DICOM calls RGB get an Adobe APP14
      // marker in readTile (unless their chroma is subsampled, which only YCbCr streams are).
      const p = spp === 3 ? Photometric.YCbCr : mono();
      return {
        encoding: { ...base, compression: Compression.JPEG, photometric: p },
        jpegRgb: spp === 3 && photometric === 'RGB',
      };
    }
    case TransferSyntax.Jpeg2000Lossless:
    case TransferSyntax.Jpeg2000:
    case TransferSyntax.Htj2kLossless:
    case TransferSyntax.Htj2kLosslessRpcl:
    case TransferSyntax.Htj2k: {
      const htj2k = ts.startsWith('1.2.840.10008.1.2.4.20');
      // YBR_ICT / YBR_RCT are undone by the codestream's multiple component transform; YBR_FULL
      // components are YCbCr without one and are converted after decoding.
      const p =
        spp === 1
          ? mono()
          : photometric === 'YBR_FULL' || photometric === 'YBR_FULL_422'
            ? Photometric.YCbCr
            : Photometric.RGB;
      const compression = htj2k ? Compression.HTJ2K : Compression.JPEG2000;
      return { encoding: { ...base, compression, photometric: p }, jpegRgb: false };
    }
    case TransferSyntax.JpegLsLossless:
    case TransferSyntax.JpegLsNearLossless: {
      const p = spp === 1 ? mono() : photometric === 'RGB' ? Photometric.RGB : Photometric.YCbCr;
      return { encoding: { ...base, compression: Compression.JPEGLS, photometric: p }, jpegRgb: false };
    }
    default:
      throw new UnsupportedFormat(`${key}: DICOM transfer syntax ${ts} is not supported`);
  }
}

/** Where each tile of a level (or associated image) is: instance index and frame, -1 for none. */
interface FrameMap {
  instance: Int32Array;
  frame: Int32Array;
}

function frameMap(key: string, members: Instance[], tilesX: number, tilesY: number): FrameMap {
  const n = tilesX * tilesY;
  const map: FrameMap = { instance: new Int32Array(n).fill(-1), frame: new Int32Array(n) };
  members.forEach((member, m) => {
    if (member.sparse) {
      const perFrame = member.dataset.items(Tag.PerFrameFunctionalGroupsSequence);
      perFrame.forEach((item, f) => {
        const position = item.item(Tag.PlanePositionSlideSequence);
        const column = position?.number(Tag.ColumnPositionInTotalImagePixelMatrix);
        const row = position?.number(Tag.RowPositionInTotalImagePixelMatrix);
        if (column === undefined || row === undefined) {
          throw new CorruptFile(
            `${key}: frame ${f + 1} of a TILED_SPARSE image has no Plane Position (Slide)`,
          );
        }
        // Positions are 1-based pixels of the total pixel matrix.
        const tx = Math.floor((column - 1) / member.tileWidth);
        const ty = Math.floor((row - 1) / member.tileHeight);
        if (tx < 0 || ty < 0 || tx >= tilesX || ty >= tilesY) return;
        const t = ty * tilesX + tx;
        if (map.instance[t] === -1) {
          map.instance[t] = m;
          map.frame[t] = f;
        }
      });
    } else {
      // TILED_FULL: frame k of the concatenation is tile k, row-major; frames beyond the first
      // focal plane and optical path (k >= tiles) are not served.
      for (let f = 0; f < member.frames; f++) {
        const t = member.frameOffset + f;
        if (t >= n) break;
        if (map.instance[t] === -1) {
          map.instance[t] = m;
          map.frame[t] = f;
        }
      }
    }
  });
  return map;
}

function gridOf(key: string, members: Instance[]): ImageGrid {
  const base = members[0];
  for (const m of members) {
    if (m.tileWidth !== base.tileWidth || m.tileHeight !== base.tileHeight) {
      throw new UnsupportedFormat(`${key}: instances of one level with different tile sizes`);
    }
    if (
      m.encoding.compression !== base.encoding.compression ||
      m.encoding.photometric !== base.encoding.photometric
    ) {
      throw new UnsupportedFormat(`${key}: instances of one level with different encodings`);
    }
  }
  const { width, height, tileWidth, tileHeight, encoding } = base;
  const tilesX = Math.ceil(width / tileWidth);
  const tilesY = Math.ceil(height / tileHeight);
  const map = frameMap(key, members, tilesX, tilesY);
  return {
    width,
    height,
    tileWidth,
    tileHeight,
    tilesX,
    tilesY,
    encoding,
    async readTile(x, y, options = {}) {
      if (
        !Number.isSafeInteger(x) ||
        !Number.isSafeInteger(y) ||
        x < 0 ||
        y < 0 ||
        x >= tilesX ||
        y >= tilesY
      ) {
        throw new BadRequest(
          `tile (${x}, ${y}) is outside the ${tilesX}x${tilesY} grid`,
          'tile_out_of_bounds',
        );
      }
      const t = y * tilesX + x;
      const m = map.instance[t];
      if (m === -1) return null;
      const member = members[m];
      const bytes = await member.table.read(map.frame[t], options.signal);
      if (member.jpegRgb && !chromaSubsampled(bytes)) {
        return prepareJpeg(bytes, { photometric: Photometric.RGB, samplesPerPixel: 3 });
      }
      return bytes;
    },
  };
}

async function buildSlide(instances: Instance[], options: OpenSlideOptions): Promise<Slide> {
  const { signal } = options;
  instances.sort((a, b) => (a.source.key < b.source.key ? -1 : a.source.key > b.source.key ? 1 : 0));
  // ImageType is often absent or varied in files from the field: classify by all the evidence.
  const flavors = classifyInstances(instances);
  const volumes = instances.filter((_, k) => flavors[k] === 'VOLUME');
  const key = instances[0].source.key;
  if (volumes.length === 0) throw new CorruptFile(`${key}: the DICOM series has no VOLUME instance`);

  const byLevel = new Map<string, Instance[]>();
  for (const v of volumes) {
    const id = `${v.width}x${v.height}`;
    byLevel.set(id, [...(byLevel.get(id) ?? []), v]);
  }
  const grids = [...byLevel.values()].map((members) => gridOf(members[0].source.key, members));
  const levels = levelsFromGrids(grids);

  const associated = new Map<string, ImageGrid>();
  for (const [k, instance] of instances.entries()) {
    const name = ASSOCIATED_NAMES[flavors[k]];
    if (!name || associated.has(name)) continue;
    associated.set(name, gridOf(instance.source.key, [instance]));
  }

  const base = volumes.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
  const properties = await propertiesOf(base, options.exposePhi ?? false, signal);
  const sources = instances.map((i) => i.source);
  const slide = slideOf(vendor, base.source, levels, associated, properties);
  return sources.length > 1 ? { ...slide, sources } : slide;
}

async function propertiesOf(
  base: Instance,
  exposePhi: boolean,
  signal?: AbortSignal,
): Promise<SlideProperties> {
  const ds = base.dataset;
  const raw: Record<string, string> = { 'dicom.TransferSyntaxUID': base.header.transferSyntax };
  for (const [name, t] of exposePhi ? [...PUBLIC_TAGS, ...PHI_TAGS] : PUBLIC_TAGS) {
    const element = ds.get(t);
    if (!element) continue;
    const value = element.vr === 'US' || element.vr === 'UL' ? ds.numbers(t).join('\\') : ds.string(t);
    if (value !== undefined && value !== '') raw[`dicom.${name}`] = value;
  }
  const properties: SlideProperties = { vendor, background_color: 'FFFFFF', raw };
  const spacing = ds
    .item(Tag.SharedFunctionalGroupsSequence)
    ?.item(Tag.PixelMeasuresSequence)
    ?.numbers(Tag.PixelSpacing);
  // PixelSpacing is row spacing (vertical) then column spacing (horizontal), in millimetres.
  if (spacing && spacing.length >= 2 && spacing[0] > 0 && spacing[1] > 0) {
    properties.mpp_x = spacing[1] * 1000;
    properties.mpp_y = spacing[0] * 1000;
    raw['dicom.PixelSpacing'] = `${spacing[0]}\\${spacing[1]}`;
  }
  const opticalPath = ds.item(Tag.OpticalPathSequence);
  const power = opticalPath?.number(Tag.ObjectiveLensPower);
  if (power !== undefined && power > 0) {
    properties.objective_power = power;
    raw['dicom.ObjectiveLensPower'] = String(power);
  }
  const icc = opticalPath?.get(Tag.IccProfile) ?? ds.get(Tag.IccProfile);
  if (icc && icc.length > 0) {
    try {
      properties.icc_profile = await readDeferred(base.source, icc, signal);
    } catch (error) {
      if (!(error instanceof CorruptFile)) throw error;
    }
  }
  return properties;
}

/** `fn` over `items` with at most `limit` running at once; results in order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        out[i] = await fn(items[i]);
      } catch (error) {
        failed ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return out;
}
