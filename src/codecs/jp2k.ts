// JPEG 2000 tiles: TIFF 34712 and Aperio's 33003 (YCbCr components, no multiple-component
// transform) and 33005 (RGB). Headers are checked here; decoding runs in a worker pool
// (jp2k-worker.ts). For 33003 the components are converted to RGB as OpenSlide does
// (openslide-decode-jp2k.c): with libjpeg's fixed-point tables when the chroma is full size,
// and by OpenJPEG's own sYCC routine when the chroma is subsampled (it upsamples first).

import os from 'node:os';
import { UnsupportedFormat } from '../errors.js';
import { readJp2kHeader } from './jp2k-header.js';
import type { Jp2kResult, Jp2kTask } from './jp2k-worker.js';
import { Compression, Photometric } from './types.js';
import type { DecodedImage, TileEncoding } from './types.js';
import { WorkerPool, type WorkerPoolStats } from './worker-pool.js';

export interface Jp2kDecoderOptions {
  /** Worker threads (default `os.availableParallelism()`). */
  workers?: number;
  /** Decodes waiting for a worker at most (default 256). */
  maxQueue?: number;
  /** A decode running longer is abandoned and its worker replaced (default 30 s). */
  taskTimeoutMs?: number;
}

/** The worker script beside this module: `.ts` under Vitest/tsx, `.js` once compiled. */
function workerScript(): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./jp2k-worker${extension}`, self);
}

export class Jp2kDecoder {
  private readonly pool: WorkerPool<Jp2kTask, Jp2kResult>;

  constructor(options: Jp2kDecoderOptions = {}) {
    this.pool = new WorkerPool<Jp2kTask, Jp2kResult>({
      script: workerScript(),
      size: Math.max(1, options.workers ?? os.availableParallelism()),
      maxQueue: options.maxQueue ?? 256,
      taskTimeoutMs: options.taskTimeoutMs ?? 30_000,
      name: 'medstream-jp2k',
    });
  }

  get workerCount(): number {
    return this.pool.workerCount;
  }

  poolStats(): WorkerPoolStats[] {
    return [this.pool.stats()];
  }

  /** Decodes one tile to 8-bit gray or RGB; `maxBytes` bounds the size the header may declare. */
  async decode(
    bytes: Uint8Array,
    encoding: TileEncoding,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<DecodedImage> {
    const header = readJp2kHeader(bytes);
    const { components } = header;
    if (components.length !== 1 && components.length !== 3) {
      throw new UnsupportedFormat(`JPEG 2000 with ${components.length} components is not supported`);
    }
    if (components.some((c) => c.precision !== 8 || c.signed)) {
      throw new UnsupportedFormat('only unsigned 8-bit JPEG 2000 components are supported');
    }
    if (header.xOffset !== 0 || header.yOffset !== 0) {
      throw new UnsupportedFormat('JPEG 2000 codestreams with an image offset are not supported');
    }
    if (header.width * header.height * components.length > maxBytes) {
      throw new UnsupportedFormat(
        `JPEG 2000 tile of ${header.width}x${header.height} exceeds the decode limit of ${maxBytes} bytes`,
      );
    }
    const ycbcr =
      encoding.compression === Compression.AperioJP2KYCbCr ||
      (encoding.compression === Compression.JPEG2000 && encoding.photometric === Photometric.YCbCr);
    const [, cb, cr] = components;
    const subsampled = components.some((c) => c.dx !== 1 || c.dy !== 1);
    // OpenJPEG (in the WASM build) upsamples and converts chroma subsampled 2x1 or 2x2 itself and
    // treats such data as YCbCr; any other layout would come back mis-interleaved.
    const decoderConverts =
      components.length === 3 &&
      components[0].dx === 1 &&
      components[0].dy === 1 &&
      cb.dx === 2 &&
      cr.dx === 2 &&
      cb.dy === cr.dy &&
      (cb.dy === 1 || cb.dy === 2);
    if (subsampled && !(ycbcr && decoderConverts)) {
      const layout = components.map((c) => `${c.dx}x${c.dy}`).join(',');
      throw new UnsupportedFormat(`JPEG 2000 component subsampling ${layout} is not supported here`);
    }
    // The worker gets its own copy: transferring would detach the caller's (possibly cached) bytes.
    const copy = bytes.slice();
    const result = await this.pool.run({ bytes: copy, ycbcr }, [copy.buffer], signal);
    return { data: result.data, width: result.width, height: result.height, channels: result.channels };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
