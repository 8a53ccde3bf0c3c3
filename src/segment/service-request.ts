// The JSON body of `POST /segmentations`, checked field by field before anything is looked up:
// which volume (a series UID or a catalog NIfTI object), the key slice (an index or an instance
// UID), the box, an optional window, the engine, and how the segment is described in the SEG
// (label, colour, category and type codes). Every refusal is a `BadRequest` naming the field.

import { BadRequest } from '../errors.js';
import type { Box } from './engine.js';

/** A coded concept (PS3.3 8.8): CodeValue, CodingSchemeDesignator, CodeMeaning. */
export interface CodedConcept {
  code: string;
  scheme: string;
  meaning: string;
}

export interface SegmentationRequest {
  /** SeriesInstanceUID of a catalogued series (DICOM, or a NIfTI volume's derived one). */
  series?: string;
  /** Storage key of a catalogued NIfTI volume. */
  volume?: string;
  /** Key slice as an index along the volume's third axis... */
  slice?: number;
  /** ...or as the SOPInstanceUID of the key slice's instance. */
  instance?: string;
  box: Box;
  window?: [number, number];
  engine: string;
  /** Segment label (SegmentLabel, LO: 64 characters). */
  label: string;
  /** Display colour, sRGB 0..255. */
  color?: [number, number, number];
  category?: CodedConcept;
  type?: CodedConcept;
  /** Store the SEG into the study (default true). */
  store: boolean;
}

const UID = /^[0-9]+(\.[0-9]+)*$/;
const FIELDS = new Set([
  'series',
  'volume',
  'slice',
  'instance',
  'box',
  'window',
  'engine',
  'label',
  'color',
  'category',
  'type',
  'store',
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function uid(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length > 64 || !UID.test(value))
    throw new BadRequest(`${field} must be a DICOM UID (digits and dots, at most 64 characters)`);
  return value;
}

function box(value: unknown): Box {
  let corners: unknown[];
  if (Array.isArray(value)) corners = value;
  else if (isObject(value)) corners = [value.x0, value.y0, value.x1, value.y1];
  else throw new BadRequest('box must be [x0, y0, x1, y1] or {x0, y0, x1, y1} in pixels of the key slice');
  if (corners.length !== 4 || !corners.every((c) => typeof c === 'number' && Number.isFinite(c)))
    throw new BadRequest('box must hold four finite numbers x0, y0, x1, y1');
  const [x0, y0, x1, y1] = corners as number[];
  if (x1 <= x0 || y1 <= y0)
    throw new BadRequest(`box ${corners.join(',')} is empty: need x1 > x0 and y1 > y0`);
  return { x0, y0, x1, y1 };
}

function color(value: unknown): [number, number, number] {
  if (typeof value === 'string') {
    const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(value);
    if (m) return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
  } else if (
    Array.isArray(value) &&
    value.length === 3 &&
    value.every((c) => Number.isInteger(c) && (c as number) >= 0 && (c as number) <= 255)
  ) {
    return value as [number, number, number];
  }
  throw new BadRequest('color must be "#rrggbb" or [r, g, b] with integers 0..255');
}

function coded(value: unknown, field: string): CodedConcept {
  const ok = (s: unknown, max: number) => typeof s === 'string' && s.length > 0 && s.length <= max;
  if (!isObject(value) || !ok(value.code, 16) || !ok(value.scheme, 16) || !ok(value.meaning, 64))
    throw new BadRequest(
      `${field} must be {code, scheme, meaning} (e.g. {"code": "10200004", "scheme": "SCT", "meaning": "Liver"})`,
    );
  return { code: value.code as string, scheme: value.scheme as string, meaning: value.meaning as string };
}

/** Parses and checks the request body. */
export function parseSegmentationRequest(body: unknown, engines: readonly string[]): SegmentationRequest {
  if (!isObject(body)) throw new BadRequest('the body must be a JSON object');
  const unknown = Object.keys(body).filter((k) => !FIELDS.has(k));
  if (unknown.length > 0)
    throw new BadRequest(`unknown field(s) ${unknown.join(', ')}; known: ${[...FIELDS].join(', ')}`);
  const request: SegmentationRequest = {
    box: box(body.box),
    engine: 'classical',
    label: 'segment 1',
    store: true,
  };
  if ((body.series === undefined) === (body.volume === undefined))
    throw new BadRequest(
      'give exactly one of series (a SeriesInstanceUID) and volume (a catalogued NIfTI key)',
    );
  if (body.series !== undefined) request.series = uid(body.series, 'series');
  if (body.volume !== undefined) {
    if (typeof body.volume !== 'string' || body.volume === '' || body.volume.length > 1024)
      throw new BadRequest('volume must be the storage key of a catalogued NIfTI volume');
    request.volume = body.volume;
  }
  if ((body.slice === undefined) === (body.instance === undefined))
    throw new BadRequest('give exactly one of slice (an index) and instance (the key slice SOPInstanceUID)');
  if (body.slice !== undefined) {
    if (!Number.isInteger(body.slice) || (body.slice as number) < 0)
      throw new BadRequest('slice must be a non-negative integer');
    request.slice = body.slice as number;
  }
  if (body.instance !== undefined) request.instance = uid(body.instance, 'instance');
  if (body.window !== undefined) {
    const w = body.window;
    if (
      !Array.isArray(w) ||
      w.length !== 2 ||
      !w.every((v) => typeof v === 'number' && Number.isFinite(v)) ||
      (w[0] as number) >= (w[1] as number)
    )
      throw new BadRequest('window must be [lo, hi] with lo < hi (e.g. [-160, 240])');
    request.window = [w[0] as number, w[1] as number];
  }
  if (body.engine !== undefined) {
    if (typeof body.engine !== 'string' || !engines.includes(body.engine))
      throw new BadRequest(`engine must be one of: ${engines.join(', ')}`);
    request.engine = body.engine;
  }
  if (body.label !== undefined) {
    // SegmentLabel is an LO: 64 characters, no backslash or control characters.
    if (typeof body.label !== 'string' || !/^[^\\\p{Cc}]{1,64}$/u.test(body.label))
      throw new BadRequest('label must be 1 to 64 characters without backslashes or control characters');
    request.label = body.label;
  }
  if (body.color !== undefined) request.color = color(body.color);
  if (body.category !== undefined) request.category = coded(body.category, 'category');
  if (body.type !== undefined) request.type = coded(body.type, 'type');
  if (body.store !== undefined) {
    if (typeof body.store !== 'boolean') throw new BadRequest('store must be true or false');
    request.store = body.store;
  }
  return request;
}

/** sRGB 0..255 -> the DICOM CIELab triple (PS3.3 C.10.7.1.1: L 0..100, a/b -128..127, scaled to 0..65535). */
export function dicomLab([r, g, b]: [number, number, number]): [number, number, number] {
  const lin = (c: number) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  };
  const [R, G, B] = [lin(r), lin(g), lin(b)];
  // sRGB -> XYZ (D65), normalised by the D65 white.
  const x = (0.4124564 * R + 0.3575761 * G + 0.1804375 * B) / 0.95047;
  const y = 0.2126729 * R + 0.7151522 * G + 0.072175 * B;
  const z = (0.0193339 * R + 0.119192 * G + 0.9503041 * B) / 1.08883;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 / 116) * t + 16 / 116);
  const L = 116 * f(y) - 16;
  const a = 500 * (f(x) - f(y));
  const bb = 200 * (f(y) - f(z));
  const clamp = (v: number) => Math.max(0, Math.min(65535, Math.round(v)));
  return [clamp((L * 65535) / 100), clamp(((a + 128) * 65535) / 255), clamp(((bb + 128) * 65535) / 255)];
}
