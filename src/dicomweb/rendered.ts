// WADO-RS rendered images and thumbnails (PS3.18 §10.4.1.1.3, Table 8.3.5-1). Colour frames (RGB,
// YBR_FULL, YBR_FULL_422, YBR_RCT, YBR_ICT; colour.ts) are shown as stored. Grayscale frames:
// the frame is decoded to real-world values (Modality LUT: Rescale Slope / Intercept), windowed
// (`window=center,width[,linear|linear-exact|sigmoid]`, else the instance's first
// WindowCenter/Width, else the frame's min..max), inverted for MONOCHROME1, fitted into
// `viewport=w,h` (never enlarged) and encoded as JPEG (`quality`) or PNG.

import sharp from 'sharp';
import type { StoredInstance } from '../catalog/catalog.js';
import { jsonNumber } from '../dicom/json.js';
import { BadRequest, NotAcceptable, UnsupportedFormat } from '../errors.js';
import { VOLUME_TRANSFER_SYNTAXES, type FrameSampleDecoder } from '../volumes/frame-samples.js';
import { COLOUR_PHOTOMETRICS, colourFrameRgb } from './colour.js';
import { parseAccept } from './frames.js';

export interface RenderOptions {
  window?: { center: number; width: number; fn: 'linear' | 'linear-exact' | 'sigmoid' };
  viewport?: { width: number; height: number };
  quality: number;
  type: 'image/jpeg' | 'image/png';
}

const MAX_VIEWPORT = 8192;

/** The render parameters of a request (query and Accept), or a 400 / 406. */
export function renderOptions(
  query: { window?: string; viewport?: string; quality?: string; accept?: string },
  acceptHeader: string | undefined,
  defaults: { viewport?: { width: number; height: number } } = {},
): RenderOptions {
  let window: RenderOptions['window'];
  if (query.window !== undefined) {
    const [c, w, fn = 'linear'] = query.window.split(',');
    const center = Number(c);
    const width = Number(w);
    if (
      !Number.isFinite(center) ||
      !Number.isFinite(width) ||
      width < 1 ||
      !['linear', 'linear-exact', 'sigmoid'].includes(fn.toLowerCase())
    ) {
      throw new BadRequest('window must be center,width[,linear|linear-exact|sigmoid] with width >= 1');
    }
    window = { center, width, fn: fn.toLowerCase() as 'linear' | 'linear-exact' | 'sigmoid' };
  }
  let viewport = defaults.viewport;
  if (query.viewport !== undefined) {
    const [w, h] = query.viewport.split(',').map(Number);
    if (
      !Number.isInteger(w) ||
      !Number.isInteger(h) ||
      w < 1 ||
      h < 1 ||
      w > MAX_VIEWPORT ||
      h > MAX_VIEWPORT
    ) {
      throw new BadRequest(`viewport must be width,height (1..${MAX_VIEWPORT})`);
    }
    viewport = { width: w, height: h };
  }
  const quality = query.quality === undefined ? 90 : Number(query.quality);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100)
    throw new BadRequest('quality must be 1..100');
  const accepted = query.accept ? parseAccept(query.accept) : parseAccept(acceptHeader);
  let type: RenderOptions['type'] | undefined;
  for (const a of accepted) {
    if (a.type === 'image/jpeg' || a.type === '*/*' || a.type === 'image/*') type = 'image/jpeg';
    else if (a.type === 'image/png') type = 'image/png';
    if (type) break;
  }
  if (!type) throw new NotAcceptable('rendered images are image/jpeg or image/png');
  return { window, viewport, quality, type };
}

function text(instance: StoredInstance, tag: string): string | undefined {
  const v = instance.json[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

/** One stored grayscale frame of `instance` decoded to real-world values (Modality LUT applied). */
export async function decodeGrayscaleFrame(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const rows = jsonNumber(instance.json, '00280010') ?? 0;
  const columns = jsonNumber(instance.json, '00280011') ?? 0;
  const values = new Float32Array(rows * columns);
  await decoder.decodeInto(
    frame,
    instance.transferSyntax,
    {
      rows,
      columns,
      bitsAllocated: jsonNumber(instance.json, '00280100') ?? 16,
      bitsStored: jsonNumber(instance.json, '00280101') ?? 16,
      pixelRepresentation: jsonNumber(instance.json, '00280103') ?? 0,
      rescaleSlope: jsonNumber(instance.json, '00281053') ?? 1,
      rescaleIntercept: jsonNumber(instance.json, '00281052') ?? 0,
    },
    values,
    0,
    signal,
  );
  return values;
}

/** Renders one stored frame of a grayscale instance. */
export async function renderFrame(
  decoder: FrameSampleDecoder,
  instance: StoredInstance,
  frame: Uint8Array,
  options: RenderOptions,
  signal?: AbortSignal,
): Promise<Buffer> {
  const rows = jsonNumber(instance.json, '00280010') ?? 0;
  const columns = jsonNumber(instance.json, '00280011') ?? 0;
  const photometric = text(instance, '00280004') ?? 'MONOCHROME2';
  if ((jsonNumber(instance.json, '00280002') ?? 1) === 3 && COLOUR_PHOTOMETRICS.has(photometric)) {
    // Colour: shown as stored (no window).
    const rgb = await colourFrameRgb(decoder, instance, frame, signal);
    return encode(
      sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), {
        raw: { width: columns, height: rows, channels: 3 },
      }),
      options,
      false,
    );
  }
  if ((jsonNumber(instance.json, '00280002') ?? 1) !== 1 || !photometric.startsWith('MONOCHROME')) {
    throw new UnsupportedFormat(
      `rendering ${photometric} images is not supported (grayscale, ${[...COLOUR_PHOTOMETRICS].join(', ')})`,
    );
  }
  if (!VOLUME_TRANSFER_SYNTAXES.includes(instance.transferSyntax)) {
    throw new UnsupportedFormat(`rendering frames stored as ${instance.transferSyntax} is not supported yet`);
  }
  const values = await decodeGrayscaleFrame(decoder, instance, frame, signal);
  let window = options.window;
  if (!window) {
    const center = jsonNumber(instance.json, '00281050');
    const width = jsonNumber(instance.json, '00281051');
    if (center !== undefined && width !== undefined && width >= 1) window = { center, width, fn: 'linear' };
  }
  if (!window) {
    let min = Infinity;
    let max = -Infinity;
    for (const v of values) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    window = { center: (min + max) / 2, width: Math.max(1, max - min), fn: 'linear-exact' };
  }
  const gray = new Uint8Array(values.length);
  const { center: c, width: w, fn } = window;
  const invert = photometric === 'MONOCHROME1';
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    let y: number;
    // PS3.3 C.11.2.1.2: linear (the DICOM "-0.5 / -1" form), linear exact, sigmoid.
    if (fn === 'linear') {
      y =
        x <= c - 0.5 - (w - 1) / 2
          ? 0
          : x > c - 0.5 + (w - 1) / 2
            ? 255
            : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
    } else if (fn === 'linear-exact') {
      y = x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255;
    } else {
      y = 255 / (1 + Math.exp((-4 * (x - c)) / w));
    }
    const v = Math.round(y);
    gray[i] = invert ? 255 - v : v;
  }
  return encode(
    sharp(Buffer.from(gray.buffer), { raw: { width: columns, height: rows, channels: 1 } }),
    options,
    true,
  );
}

/** Fits the image into the viewport and encodes it as asked. */
function encode(image: sharp.Sharp, options: RenderOptions, gray: boolean): Promise<Buffer> {
  if (options.viewport) {
    image = image.resize(options.viewport.width, options.viewport.height, {
      fit: 'inside',
      withoutEnlargement: true,
    });
  }
  if (gray) image = image.toColourspace('b-w');
  return options.type === 'image/png'
    ? image.png().toBuffer()
    : image.jpeg({ quality: options.quality }).toBuffer();
}
