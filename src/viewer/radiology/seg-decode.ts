// Reads a binary DICOM SEG (Segmentation Storage, PS3.3 A.51) in the browser: its segments
// (number, label, display colour) and its frames, each a bit-packed plane naming the segment it
// belongs to and the source instance it was derived from (Derivation Image Sequence) or, failing
// that, its ImagePositionPatient. Fractional SEGs and encapsulated (compressed) pixel data are
// refused: MedStream writes binary, native SEGs and so do most tools.

import { parseDicom, type DataSet } from 'dicom-parser';

export interface SegSegment {
  number: number;
  label: string;
  /** sRGB 0..255 from RecommendedDisplayCIELabValue, when the SEG has one. */
  color?: [number, number, number];
}

export interface SegFrame {
  segment: number;
  /** The source instance this frame was derived from, when the SEG says. */
  sopUid?: string;
  position?: [number, number, number];
  /** rows × columns values, 1 inside. */
  mask: Uint8Array;
}

export interface DecodedSeg {
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  frameOfReferenceUid?: string;
  rows: number;
  columns: number;
  segments: SegSegment[];
  frames: SegFrame[];
}

const SEG_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';

export function decodeSeg(bytes: Uint8Array): DecodedSeg {
  const ds = parseDicom(bytes);
  const sopClass = ds.string('x00080016');
  if (sopClass !== SEG_STORAGE) throw new Error(`not a DICOM SEG (SOP Class ${sopClass ?? 'none'})`);
  if (ds.string('x00620001') !== 'BINARY')
    throw new Error(`only binary SEGs are shown (this one is ${ds.string('x00620001') ?? 'untyped'})`);
  const rows = ds.uint16('x00280010') ?? 0;
  const columns = ds.uint16('x00280011') ?? 0;
  const count = Number(ds.string('x00280008') ?? '1');
  const pixels = ds.elements.x7fe00010;
  if (!pixels || rows === 0 || columns === 0) throw new Error('the SEG has no pixel data');
  if (pixels.encapsulatedPixelData) throw new Error('compressed SEG pixel data is not supported');
  const plane = rows * columns;
  if (pixels.length * 8 < plane * count) throw new Error('the SEG pixel data is shorter than its frames');

  const segments = (ds.elements.x00620002?.items ?? []).map((item): SegSegment => {
    const s = item.dataSet!;
    const lab = [0, 1, 2].map((i) => s.uint16('x0062000d', i));
    return {
      number: s.uint16('x00620004') ?? 1,
      label: s.string('x00620005') ?? '',
      color: lab.every((v) => v !== undefined) ? labToRgb(lab as number[]) : undefined,
    };
  });
  const shared = ds.elements.x52009229?.items?.[0]?.dataSet;
  const perFrame = ds.elements.x52009230?.items ?? [];
  const frames: SegFrame[] = [];
  for (let f = 0; f < count; f++) {
    const group = perFrame[f]?.dataSet;
    const mask = new Uint8Array(plane);
    const start = pixels.dataOffset * 8 + f * plane;
    for (let p = 0; p < plane; p++) {
      const bit = start + p;
      if (bytes[bit >> 3] & (1 << (bit & 7))) mask[p] = 1;
    }
    frames.push({
      segment:
        nested(group, ['x0062000a'])?.uint16('x0062000b') ??
        nested(shared, ['x0062000a'])?.uint16('x0062000b') ??
        1,
      sopUid: nested(group, ['x00089124', 'x00082112'])?.string('x00081155'),
      position: floats(nested(group, ['x00209113']), 'x00200032'),
      mask,
    });
  }
  return {
    sopUid: ds.string('x00080018') ?? '',
    seriesUid: ds.string('x0020000e') ?? '',
    studyUid: ds.string('x0020000d') ?? '',
    frameOfReferenceUid: ds.string('x00200052'),
    rows,
    columns,
    segments,
    frames,
  };
}

/** The first item's data set down a path of sequences. */
function nested(ds: DataSet | undefined, path: string[]): DataSet | undefined {
  let at = ds;
  for (const tag of path) at = at?.elements[tag]?.items?.[0]?.dataSet;
  return at;
}

function floats(ds: DataSet | undefined, tag: string): [number, number, number] | undefined {
  const v = ds?.string(tag)?.split('\\').map(Number);
  return v && v.length === 3 && v.every(Number.isFinite) ? (v as [number, number, number]) : undefined;
}

/** DICOM's scaled CIELab (L 0..65535 → 0..100, a and b 0..65535 → −128..127) to sRGB, D65. */
export function labToRgb([l16, a16, b16]: number[]): [number, number, number] {
  const L = (l16 * 100) / 65535;
  const a = (a16 * 255) / 65535 - 128;
  const b = (b16 * 255) / 65535 - 128;
  const fy = (L + 16) / 116;
  const fx = fy + a / 500;
  const fz = fy - b / 200;
  const inv = (t: number) => (t ** 3 > 0.008856 ? t ** 3 : (t - 16 / 116) / 7.787);
  const [x, y, z] = [0.95047 * inv(fx), inv(fy), 1.08883 * inv(fz)];
  const linear = [
    3.2404542 * x - 1.5371385 * y - 0.4985314 * z,
    -0.969266 * x + 1.8760108 * y + 0.041556 * z,
    0.0556434 * x - 0.2040259 * y + 1.0572252 * z,
  ];
  const gamma = (c: number) => (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055);
  return linear.map((c) => Math.round(255 * Math.min(1, Math.max(0, gamma(c))))) as [number, number, number];
}
