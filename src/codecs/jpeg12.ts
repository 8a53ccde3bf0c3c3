// 12-bit DCT JPEG frames (DICOM JPEG extended, process 2/4, transfer syntax .4.51 with BitsStored
// > 8), single component, decoded by the pure-JS decoder @cornerstonejs/dicom-image-loader ships
// (dist/esm/codecs/jpeg.js, pdf.js lineage; no DOM) inside the JPEG worker thread. Its level shift
// is written for 8 bits: at 12 bits it adds 2056 x 4095/255 instead of 2048 x 16 + 8, i.e. +15 on
// every sample (measured against GDCM). This module loads that file's source, replaces the one
// expression with the shift and clamp of the frame's precision (the same arithmetic at 8 bits),
// refuses to run if the expression is not found (another version of the package), and imports it.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The part of the decoder's JpegImage class used here. */
interface JpegImage {
  parse(data: Uint8Array): void;
  getData16(width: number, height: number): Uint16Array;
  colorTransform: boolean;
  width: number;
  height: number;
  components: unknown[];
}
export type JpegImageClass = new () => JpegImage;

/** The decoder cannot read this frame (as opposed to: the frame is corrupt). */
export class Jpeg12Unsupported extends Error {}

/** The output stage of `quantizeAndInverse`, as shipped (8-bit level shift and clamp). */
const SHIPPED =
  /q =\s*q <= -2056 \/ component\.bitConversion\s*\?\s*0\s*:\s*q >= 2024 \/ component\.bitConversion\s*\?\s*255 \/ component\.bitConversion\s*:\s*\(q \+ 2056 \/ component\.bitConversion\) >> 4;/g;
/** The same stage for any precision P: max = 2^P - 1; (q + 2^(P-1) * 16 + 8) >> 4, clamped. */
const FIXED =
  'var qMax = Math.round(255 / component.bitConversion); q = (q + ((qMax + 1) << 3) + 8) >> 4; q = q < 0 ? 0 : q > qMax ? qMax : q;';

/** Loads the decoder with the level shift fixed (once per thread). */
export async function loadJpeg12(): Promise<JpegImageClass> {
  const require = createRequire(import.meta.url);
  const root = path.dirname(require.resolve('@cornerstonejs/dicom-image-loader/package.json'));
  const source = await readFile(path.join(root, 'dist/esm/codecs/jpeg.js'), 'utf8');
  const matches = source.match(SHIPPED)?.length ?? 0;
  if (matches !== 1)
    throw new Error(
      `@cornerstonejs/dicom-image-loader's JPEG decoder changed (level shift found ${matches} times): 12-bit JPEG is not decoded`,
    );
  const fixed = source.replace(SHIPPED, FIXED);
  const url = `data:text/javascript;base64,${Buffer.from(fixed).toString('base64')}`;
  const module = (await import(url)) as { default: JpegImageClass };
  return module.default;
}

/** Width and height from the start-of-frame segment (SOF0/SOF1) of a JPEG stream. */
function frameSize(stream: Uint8Array): { width: number; height: number } | undefined {
  let pos = 2;
  while (pos + 8 < stream.length) {
    if (stream[pos] !== 0xff) return undefined;
    const marker = stream[pos + 1];
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker === 0xc0 || marker === 0xc1) {
      return {
        height: (stream[pos + 5] << 8) | stream[pos + 6],
        width: (stream[pos + 7] << 8) | stream[pos + 8],
      };
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2;
      continue;
    }
    pos += 2 + ((stream[pos + 2] << 8) | stream[pos + 3]);
  }
  return undefined;
}

/** One single-component 12-bit DCT JPEG frame as little-endian 16-bit samples. */
export function decodeJpeg12(
  JpegImage: JpegImageClass,
  bytes: Uint8Array,
  maxBytes: number,
): { data: Uint8Array; width: number; height: number } {
  const size = frameSize(bytes);
  if (!size || size.width < 1 || size.height < 1)
    throw new Jpeg12Unsupported('12-bit JPEG frame without a usable frame header (SOF0/SOF1 size)');
  if (size.width * size.height * 2 > maxBytes)
    throw new Jpeg12Unsupported(`12-bit JPEG frame of ${size.width}x${size.height} exceeds the decode limit`);
  const jpeg = new JpegImage();
  try {
    jpeg.parse(bytes);
  } catch (e) {
    // The decoder throws strings.
    throw new Error(e instanceof Error ? e.message : String(e));
  }
  if (jpeg.components.length !== 1)
    throw new Jpeg12Unsupported(`12-bit JPEG frames of ${jpeg.components.length} components are not decoded`);
  jpeg.colorTransform = false;
  const samples = jpeg.getData16(jpeg.width, jpeg.height);
  const data = new Uint8Array(samples.length * 2);
  const view = new DataView(data.buffer);
  for (let i = 0; i < samples.length; i++) view.setUint16(2 * i, samples[i], true);
  return { data, width: jpeg.width, height: jpeg.height };
}
