// Pixels → an image file for the client, with sharp (libvips). One function for every route, so
// every output format honours the same options: JPEG (quality, 4:2:0 like most slide scanners),
// PNG (lossless; a fast zlib level — tiles are small and latency matters more than 10 % bytes),
// WebP (quality, low effort for the same reason). Gray and bitonal pipelines (one band) stay one
// band: 8-bit grayscale JPEG and PNG, bitonal PNG as a 1-bit two-colour palette; WebP has no
// grayscale mode, so its gray is three equal channels.

import sharp from 'sharp';
import type { DecodedImage } from '../codecs/types.js';
import { BadRequest } from '../errors.js';

export type ImageFormat = 'jpg' | 'png' | 'webp';

export const CONTENT_TYPES: Record<ImageFormat, string> = {
  jpg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
};

/** Parses a file extension or format name; `jpeg` is accepted for `jpg`. */
export function parseImageFormat(text: string): ImageFormat {
  const f = text.toLowerCase();
  if (f === 'jpg' || f === 'jpeg') return 'jpg';
  if (f === 'png' || f === 'webp') return f;
  throw new BadRequest(
    `unsupported image format ${JSON.stringify(text)} (use jpg, png or webp)`,
    'invalid_format',
  );
}

/** Validates a JPEG/WebP quality parameter (1–100). */
export function parseQuality(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 1 && n <= 100))
    throw new BadRequest(`Invalid quality: ${raw} (must be 1-100)`, 'invalid_quality');
  return n;
}

export interface EncodeOptions {
  format: ImageFormat;
  quality: number;
  /** The pipeline holds only 0 and 255 (IIIF `bitonal`): PNG is written with 1 bit per pixel. */
  bitonal?: boolean;
  /**
   * JPEG with Huffman tables optimised for the image (default true): ~5 % smaller, but a second
   * pass makes the encode ~1.5× as long. Region reads turn it off (as PIL's default), tiles keep it.
   */
  optimiseCoding?: boolean;
}

/** Wraps decoded pixels as a sharp pipeline input (callers may add resize/rotate first). */
export function sharpOf(image: DecodedImage): sharp.Sharp {
  return sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: image.channels },
    // Regions can exceed libvips' default pixel limit; our own limits are enforced before this.
    limitInputPixels: false,
  });
}

/** Encodes a sharp pipeline to the requested format. */
export async function encodePipeline(pipeline: sharp.Sharp, options: EncodeOptions): Promise<Buffer> {
  switch (options.format) {
    case 'jpg':
      return pipeline
        .jpeg({
          quality: options.quality,
          chromaSubsampling: '4:2:0',
          optimiseCoding: options.optimiseCoding ?? true,
        })
        .toBuffer();
    case 'png':
      // Two palette entries → libvips writes bit depth 1; without dithering the palette is
      // exactly black and white, as the thresholded input.
      if (options.bitonal) return pipeline.png({ palette: true, colours: 2, dither: 0 }).toBuffer();
      return pipeline.png({ compressionLevel: 3, adaptiveFiltering: false }).toBuffer();
    case 'webp':
      return pipeline.webp({ quality: options.quality, effort: 2 }).toBuffer();
  }
}

export function encodeImage(image: DecodedImage, options: EncodeOptions): Promise<Buffer> {
  return encodePipeline(sharpOf(image), options);
}
