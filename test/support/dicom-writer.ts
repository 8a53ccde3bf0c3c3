// A minimal DICOM Part 10 writer for tests: preamble, DICM, explicit-VR file meta, a data set in
// explicit or implicit VR little endian (sequences of defined or undefined length), and pixel
// data native or encapsulated (Basic Offset Table, Extended Offset Table, or none). Large test
// instances are written as sparse files (`hole` chunks are skipped, not written), and
// `wsiInstance` builds a VL Whole Slide Microscopy instance from a few parameters.
import { open } from 'node:fs/promises';
import { Tag, TransferSyntax, VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE, tag } from '../../src/dicom/tags.js';

export interface ElementSpec {
  tag: number;
  vr: string;
  value?: string | number[] | Uint8Array;
  items?: ElementSpec[][];
  /** Sequences: write items and the sequence with undefined lengths (default true). */
  undefinedLength?: boolean;
}

export type PixelSpec =
  | { kind: 'native'; frames: Uint8Array[] }
  | {
      kind: 'encapsulated';
      frames: Uint8Array[];
      offsets: 'bot' | 'eot' | 'none';
      /** Split each frame into this many fragments (BOT / none only; default 1). */
      fragmentsPerFrame?: number;
      /** A fragment of this many zero bytes (a sparse hole on disk) before frame 0's data. */
      holeBefore?: number;
    };

export interface DicomSpec {
  transferSyntax: string;
  elements: ElementSpec[];
  pixel?: PixelSpec;
  /** Leave out the sequence delimiter after the fragments (a truncated-looking file). */
  noSequenceDelimiter?: boolean;
}

/** A piece of the file: bytes, or a run of zeros that a file write leaves as a hole. */
export type Chunk = Uint8Array | { hole: number };

const LONG = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function u16(n: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n, true);
  return b;
}
function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}
function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function valueBytes(e: ElementSpec): Uint8Array {
  const v = e.value;
  if (v === undefined) return new Uint8Array(0);
  if (v instanceof Uint8Array) return v.length % 2 ? concat([v, new Uint8Array(1)]) : v;
  if (typeof v === 'string') {
    const bytes = new TextEncoder().encode(v);
    if (bytes.length % 2 === 0) return bytes;
    return concat([bytes, Uint8Array.of(e.vr === 'UI' ? 0 : 0x20)]);
  }
  const size = { US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8, OV: 8, UV: 8 }[e.vr];
  if (!size) return valueBytes({ ...e, value: v.join('\\') });
  const out = new Uint8Array(size * v.length);
  const view = new DataView(out.buffer);
  v.forEach((n, i) => {
    const at = i * size;
    if (e.vr === 'US') view.setUint16(at, n, true);
    else if (e.vr === 'SS') view.setInt16(at, n, true);
    else if (e.vr === 'UL') view.setUint32(at, n, true);
    else if (e.vr === 'SL') view.setInt32(at, n, true);
    else if (e.vr === 'FL') view.setFloat32(at, n, true);
    else if (e.vr === 'FD') view.setFloat64(at, n, true);
    else view.setBigUint64(at, BigInt(n), true);
  });
  return out;
}

function header(t: number, vr: string, length: number, explicit: boolean): Uint8Array {
  const tagBytes = concat([u16(t >>> 16), u16(t & 0xffff)]);
  if (!explicit || t >>> 16 === 0xfffe) return concat([tagBytes, u32(length)]);
  const vrBytes = new TextEncoder().encode(vr);
  if (LONG.has(vr)) return concat([tagBytes, vrBytes, new Uint8Array(2), u32(length)]);
  return concat([tagBytes, vrBytes, u16(length)]);
}

/** One element, encoded. */
export function encodeElement(e: ElementSpec, explicit: boolean): Uint8Array {
  if (e.items) {
    const undefinedLength = e.undefinedLength ?? true;
    const items = e.items.map((item) => {
      const body = concat(item.map((child) => encodeElement(child, explicit)));
      return undefinedLength
        ? concat([
            header(Tag.Item, '', 0xffffffff, explicit),
            body,
            header(Tag.ItemDelimitation, '', 0, explicit),
          ])
        : concat([header(Tag.Item, '', body.length, explicit), body]);
    });
    const body = concat(items);
    return undefinedLength
      ? concat([
          header(e.tag, 'SQ', 0xffffffff, explicit),
          body,
          header(Tag.SequenceDelimitation, '', 0, explicit),
        ])
      : concat([header(e.tag, 'SQ', body.length, explicit), body]);
  }
  const value = valueBytes(e);
  return concat([header(e.tag, e.vr, value.length, explicit), value]);
}

/** The file as chunks (holes kept as holes). */
export function dicomChunks(spec: DicomSpec): Chunk[] {
  const explicit = spec.transferSyntax !== TransferSyntax.ImplicitVrLittleEndian;
  const metaBody = concat(
    [
      { tag: tag(0x0002, 0x0001), vr: 'OB', value: Uint8Array.of(0, 1) },
      { tag: Tag.MediaStorageSopClassUid, vr: 'UI', value: VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE },
      { tag: tag(0x0002, 0x0003), vr: 'UI', value: '1.2.3.4.5.6' },
      { tag: Tag.TransferSyntaxUid, vr: 'UI', value: spec.transferSyntax },
    ].map((e) => encodeElement(e, true)),
  );
  const meta = concat([
    encodeElement({ tag: Tag.FileMetaGroupLength, vr: 'UL', value: [metaBody.length] }, true),
    metaBody,
  ]);
  const elements = [...spec.elements];
  const chunks: Chunk[] = [new Uint8Array(128), new TextEncoder().encode('DICM'), meta];
  const pixel = spec.pixel;
  if (pixel?.kind === 'encapsulated' && pixel.offsets === 'eot') {
    // Offsets are from the first fragment's item tag; each frame is one fragment.
    const offsets: number[] = [];
    const lengths: number[] = [];
    let at = pixel.holeBefore ? 8 + pixel.holeBefore : 0;
    for (const frame of pixel.frames) {
      offsets.push(at);
      lengths.push(frame.length);
      at += 8 + frame.length + (frame.length % 2);
    }
    elements.push({ tag: Tag.ExtendedOffsetTable, vr: 'OV', value: offsets });
    elements.push({ tag: Tag.ExtendedOffsetTableLengths, vr: 'OV', value: lengths });
  }
  elements.sort((a, b) => a.tag - b.tag);
  chunks.push(concat(elements.map((e) => encodeElement(e, explicit))));
  if (!pixel) return chunks;
  if (pixel.kind === 'native') {
    const data = concat(pixel.frames);
    chunks.push(encodeElement({ tag: Tag.PixelData, vr: 'OB', value: data }, explicit));
    return chunks;
  }
  chunks.push(header(Tag.PixelData, 'OB', 0xffffffff, explicit));
  const perFrame = pixel.fragmentsPerFrame ?? 1;
  const fragments: Uint8Array[][] = pixel.frames.map((frame) => {
    const even = frame.length % 2 ? concat([frame, new Uint8Array(1)]) : frame;
    if (perFrame === 1) return [even];
    const size = Math.ceil(even.length / perFrame / 2) * 2;
    const parts: Uint8Array[] = [];
    for (let i = 0; i < even.length; i += size) parts.push(even.subarray(i, i + size));
    return parts;
  });
  const bot: number[] = [];
  let at = pixel.holeBefore ? 8 + pixel.holeBefore : 0;
  for (const parts of fragments) {
    bot.push(at);
    for (const p of parts) at += 8 + p.length;
  }
  const botBytes = pixel.offsets === 'bot' ? concat(bot.map(u32)) : new Uint8Array(0);
  chunks.push(concat([header(Tag.Item, '', botBytes.length, false), botBytes]));
  if (pixel.holeBefore) {
    chunks.push(header(Tag.Item, '', pixel.holeBefore, false));
    chunks.push({ hole: pixel.holeBefore });
  }
  for (const parts of fragments)
    for (const p of parts) chunks.push(concat([header(Tag.Item, '', p.length, false), p]));
  if (!spec.noSequenceDelimiter) chunks.push(header(Tag.SequenceDelimitation, '', 0, false));
  return chunks;
}

/** The file in memory (holes as zeros). */
export function writeDicom(spec: DicomSpec): Uint8Array {
  return concat(dicomChunks(spec).map((c) => (c instanceof Uint8Array ? c : new Uint8Array(c.hole))));
}

/** Writes the file, leaving holes sparse; returns its size. */
export async function writeDicomFile(path: string, spec: DicomSpec): Promise<number> {
  const handle = await open(path, 'w');
  let at = 0;
  try {
    for (const chunk of dicomChunks(spec)) {
      if (chunk instanceof Uint8Array) {
        await handle.write(chunk, 0, chunk.length, at);
        at += chunk.length;
      } else at += chunk.hole;
    }
    await handle.truncate(at);
  } finally {
    await handle.close();
  }
  return at;
}

export interface WsiInstanceOptions {
  transferSyntax: string;
  /** Total pixel matrix. */
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  frames: Uint8Array[];
  samplesPerPixel?: number;
  photometric?: string;
  bitsAllocated?: number;
  imageType?: 'VOLUME' | 'LABEL' | 'OVERVIEW' | 'THUMBNAIL';
  seriesUid?: string;
  sopInstanceUid?: string;
  /** TILED_SPARSE: each frame's 1-based (column, row) position in the total pixel matrix. */
  positions?: [number, number][];
  /** Concatenation: 0-based offset of the first frame. */
  frameOffset?: number;
  offsets?: 'bot' | 'eot' | 'none';
  fragmentsPerFrame?: number;
  holeBefore?: number;
  /** mm per pixel (row, column). */
  pixelSpacing?: [number, number];
  objectivePower?: number;
  patientName?: string;
  patientId?: string;
  icc?: Uint8Array;
  /** Overrides NumberOfFrames (for mismatch tests). */
  numberOfFrames?: number;
  undefinedLengthSequences?: boolean;
  extra?: ElementSpec[];
}

const NATIVE = new Set<string>([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
]);

/** A VL Whole Slide Microscopy instance. */
export function wsiInstance(o: WsiInstanceOptions): DicomSpec {
  const spp = o.samplesPerPixel ?? 3;
  const u = o.undefinedLengthSequences ?? true;
  const elements: ElementSpec[] = [
    { tag: Tag.ImageType, vr: 'CS', value: `DERIVED\\PRIMARY\\${o.imageType ?? 'VOLUME'}\\NONE` },
    { tag: Tag.SopClassUid, vr: 'UI', value: VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE },
    {
      tag: Tag.SopInstanceUid,
      vr: 'UI',
      value: o.sopInstanceUid ?? `1.2.826.0.1.${Math.floor(Math.random() * 1e9)}`,
    },
    { tag: Tag.Manufacturer, vr: 'LO', value: 'MedStream tests' },
    { tag: Tag.PatientName, vr: 'PN', value: o.patientName ?? 'Doe^Jane' },
    { tag: Tag.PatientId, vr: 'LO', value: o.patientId ?? 'PID-0042' },
    { tag: Tag.StudyInstanceUid, vr: 'UI', value: '1.2.826.0.1.7' },
    { tag: Tag.SeriesInstanceUid, vr: 'UI', value: o.seriesUid ?? '1.2.826.0.1.8' },
    { tag: Tag.DimensionOrganizationType, vr: 'CS', value: o.positions ? 'TILED_SPARSE' : 'TILED_FULL' },
    { tag: Tag.SamplesPerPixel, vr: 'US', value: [spp] },
    {
      tag: Tag.PhotometricInterpretation,
      vr: 'CS',
      value: o.photometric ?? (spp === 3 ? 'RGB' : 'MONOCHROME2'),
    },
    { tag: Tag.NumberOfFrames, vr: 'IS', value: String(o.numberOfFrames ?? o.frames.length) },
    { tag: Tag.Rows, vr: 'US', value: [o.tileHeight] },
    { tag: Tag.Columns, vr: 'US', value: [o.tileWidth] },
    { tag: Tag.BitsAllocated, vr: 'US', value: [o.bitsAllocated ?? 8] },
    { tag: Tag.BitsStored, vr: 'US', value: [o.bitsAllocated ?? 8] },
    { tag: Tag.HighBit, vr: 'US', value: [(o.bitsAllocated ?? 8) - 1] },
    { tag: Tag.PixelRepresentation, vr: 'US', value: [0] },
    { tag: Tag.TotalPixelMatrixColumns, vr: 'UL', value: [o.width] },
    { tag: Tag.TotalPixelMatrixRows, vr: 'UL', value: [o.height] },
    {
      tag: Tag.SharedFunctionalGroupsSequence,
      vr: 'SQ',
      undefinedLength: u,
      items: [
        [
          {
            tag: Tag.PixelMeasuresSequence,
            vr: 'SQ',
            undefinedLength: u,
            items: [
              [{ tag: Tag.PixelSpacing, vr: 'DS', value: (o.pixelSpacing ?? [0.00025, 0.00025]).join('\\') }],
            ],
          },
        ],
      ],
    },
    {
      tag: Tag.OpticalPathSequence,
      vr: 'SQ',
      undefinedLength: u,
      items: [
        [
          ...(o.icc ? [{ tag: Tag.IccProfile, vr: 'OB', value: o.icc }] : []),
          { tag: Tag.ObjectiveLensPower, vr: 'DS', value: String(o.objectivePower ?? 40) },
        ],
      ],
    },
    ...(o.extra ?? []),
  ];
  if (spp === 3) elements.push({ tag: Tag.PlanarConfiguration, vr: 'US', value: [0] });
  if (o.frameOffset !== undefined) {
    elements.push({ tag: Tag.ConcatenationUid, vr: 'UI', value: '1.2.826.0.1.9' });
    elements.push({ tag: Tag.ConcatenationFrameOffsetNumber, vr: 'UL', value: [o.frameOffset] });
  }
  if (o.positions) {
    elements.push({
      tag: Tag.PerFrameFunctionalGroupsSequence,
      vr: 'SQ',
      undefinedLength: u,
      items: o.positions.map(([column, row]) => [
        {
          tag: Tag.PlanePositionSlideSequence,
          vr: 'SQ',
          undefinedLength: u,
          items: [
            [
              { tag: Tag.ColumnPositionInTotalImagePixelMatrix, vr: 'SL', value: [column] },
              { tag: Tag.RowPositionInTotalImagePixelMatrix, vr: 'SL', value: [row] },
            ],
          ],
        },
      ]),
    });
  }
  const pixel: PixelSpec = NATIVE.has(o.transferSyntax)
    ? { kind: 'native', frames: o.frames }
    : {
        kind: 'encapsulated',
        frames: o.frames,
        offsets: o.offsets ?? 'bot',
        fragmentsPerFrame: o.fragmentsPerFrame,
        holeBefore: o.holeBefore,
      };
  return { transferSyntax: o.transferSyntax, elements, pixel };
}
