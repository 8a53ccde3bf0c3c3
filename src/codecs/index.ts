// Entry point of codecs/: `createCodecs()` builds the object that turns stored tile bytes into
// pixels (`decodeTile`) and owns the JPEG 2000 worker pool. It is built once in cli/ and passed
// down (no global state); `prepareJpeg`, `scansCleanly` and `decodesCleanly` are re-exported for
// JPEG passthrough.

import { Cancelled, DecodeError, UnsupportedFormat, throwIfAborted } from '../errors.js';
import { CharlsOpenjphDecoder } from './charls-openjph.js';
import { Jp2kDecoder } from './jp2k.js';
import type { Jp2kDecoderOptions } from './jp2k.js';
import { DecodeStats, type CodecTimes } from './decode-stats.js';
import { decoderFor } from './registry.js';
import type { WorkerPoolStats } from './worker-pool.js';
import type { DecodeOptions, DecodedImage, TileEncoding } from './types.js';

export { decodesCleanly, prepareJpeg } from './jpeg.js';
export { JpegScanner, scansCleanly } from './jpeg-scan.js';
export { supportedCompressions } from './registry.js';

export interface CodecsOptions extends Jp2kDecoderOptions {
  /** Largest decoded tile in bytes (default 256 MiB, e.g. a 8192x8192 RGBA tile). */
  maxDecodedBytes?: number;
}

export interface Codecs {
  /**
   * Decodes one stored tile. `width`/`height` are the stored tile size (or fewer rows, for a
   * short final strip). The result is 8-bit gray, RGB or RGBA and never larger than
   * `width`x`height` (bigger decoded images are cropped); JPEG, WebP and JPEG 2000 streams that
   * decode smaller come back at their own size.
   * Throws `UnsupportedFormat` for encodings MedStream cannot decode, `DecodeError` for corrupt
   * data, `Cancelled` when the signal fires.
   */
  decodeTile(
    bytes: Uint8Array,
    encoding: TileEncoding,
    width: number,
    height: number,
    options?: DecodeOptions,
  ): Promise<DecodedImage>;
  /** Decode times per codec, and each worker pool's size and queue (for /metrics). */
  stats(): CodecsStats;
  /** Stops the worker threads. */
  close(): Promise<void>;
}

export interface CodecsStats {
  decodes: Record<string, CodecTimes>;
  pools: WorkerPoolStats[];
}

export const DEFAULT_MAX_DECODED_BYTES = 256 * 1024 * 1024;

const COMPRESSION_NAMES: Record<number, string> = { 6: 'old-style JPEG (TIFF compression 6)' };

export function createCodecs(options: CodecsOptions = {}): Codecs {
  const maxDecodedBytes = options.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
  let jp2k: Jp2kDecoder | undefined;
  let closed = false;
  const jp2kDecoder = (): Jp2kDecoder => (jp2k ??= new Jp2kDecoder(options));
  let charls: CharlsOpenjphDecoder | undefined;
  const charlsDecoder = (): CharlsOpenjphDecoder => (charls ??= new CharlsOpenjphDecoder(options));
  const stats = new DecodeStats();

  return {
    async decodeTile(bytes, encoding, width, height, decodeOptions = {}) {
      const { signal } = decodeOptions;
      if (closed) throw new Cancelled('codecs are closed');
      throwIfAborted(signal);
      if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
        throw new DecodeError(`invalid tile size ${width}x${height}`);
      }
      const channels = Math.max(3, encoding.samplesPerPixel);
      const bytesPerSample = encoding.bitsPerSample[0] > 8 ? 2 : 1;
      if (width * height * channels * bytesPerSample > maxDecodedBytes) {
        throw new UnsupportedFormat(
          `tile of ${width}x${height} exceeds the decode limit of ${maxDecodedBytes} bytes`,
        );
      }
      const decode = decoderFor(encoding.compression);
      if (!decode) {
        const name = COMPRESSION_NAMES[encoding.compression] ?? `TIFF compression ${encoding.compression}`;
        throw new UnsupportedFormat(`${name} is not supported`);
      }
      const context = {
        maxDecodedBytes,
        signal,
        // Only JPEG 2000 needs the pool; build it on first use so JPEG-only servers start no threads.
        get jp2k() {
          return jp2kDecoder();
        },
        get charlsOpenjph() {
          return charlsDecoder();
        },
      };
      const started = performance.now();
      let image: DecodedImage;
      try {
        image = await decode(bytes, encoding, width, height, context);
      } catch (e) {
        if (!(e instanceof Cancelled)) stats.record(encoding.compression, performance.now() - started, true);
        throw e;
      }
      stats.record(encoding.compression, performance.now() - started, false);
      throwIfAborted(signal);
      return cropTo(image, width, height);
    },
    stats() {
      return {
        decodes: stats.snapshot(),
        pools: [...(jp2k?.poolStats() ?? []), ...(charls?.poolStats() ?? [])],
      };
    },
    async close() {
      closed = true;
      await jp2k?.close();
      await charls?.close();
    },
  };
}

/** Crops an image that decoded larger than the stored tile size. */
function cropTo(image: DecodedImage, width: number, height: number): DecodedImage {
  if (image.width <= width && image.height <= height) return image;
  const w = Math.min(width, image.width);
  const h = Math.min(height, image.height);
  const rowIn = image.width * image.channels;
  const rowOut = w * image.channels;
  const data = new Uint8Array(rowOut * h);
  for (let y = 0; y < h; y++) data.set(image.data.subarray(y * rowIn, y * rowIn + rowOut), y * rowOut);
  return { data, width: w, height: h, channels: image.channels };
}
