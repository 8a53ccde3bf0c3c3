// JPEG-LS and HTJ2K frames (DICOM transfer syntaxes 1.2.840.10008.1.2.4.80/.81 and .201-.203;
// pseudo compression codes `Compression.JPEGLS` / `Compression.HTJ2K`, see types.ts), decoded
// by the CharLS and OpenJPH WASM builds in worker pools (jpegls-worker.ts, htj2k-worker.ts),
// each started on first use. YBR_FULL components (no colour transform in the stream) are
// converted to RGB.

import os from 'node:os';
import { UnsupportedFormat } from '../errors.js';
import type { Jp2kDecoderOptions } from './jp2k.js';
import { Compression, Photometric } from './types.js';
import type { DecodedImage, TileEncoding } from './types.js';
import type { WasmFrameCodec, WasmFrameResult, WasmFrameTask } from './wasm-frame-worker.js';
import { WorkerPool, type WorkerPoolStats } from './worker-pool.js';

function workerScript(codec: WasmFrameCodec): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${codec}-worker${extension}`, self);
}

export class CharlsOpenjphDecoder {
  private readonly pools = new Map<WasmFrameCodec, WorkerPool<WasmFrameTask, WasmFrameResult>>();

  constructor(private readonly options: Jp2kDecoderOptions = {}) {}

  private pool(codec: WasmFrameCodec): WorkerPool<WasmFrameTask, WasmFrameResult> {
    let pool = this.pools.get(codec);
    if (!pool) {
      pool = new WorkerPool<WasmFrameTask, WasmFrameResult>({
        script: workerScript(codec),
        size: Math.max(1, this.options.workers ?? os.availableParallelism()),
        maxQueue: this.options.maxQueue ?? 256,
        taskTimeoutMs: this.options.taskTimeoutMs ?? 30_000,
        name: `medstream-${codec}`,
      });
      this.pools.set(codec, pool);
    }
    return pool;
  }

  poolStats(): WorkerPoolStats[] {
    return [...this.pools.values()].map((pool) => pool.stats());
  }

  /** Decodes one JPEG-LS or HTJ2K frame to 8-bit gray or RGB; `maxBytes` bounds the decoded size. */
  async decode(
    bytes: Uint8Array,
    encoding: TileEncoding,
    maxBytes: number,
    signal?: AbortSignal,
  ): Promise<DecodedImage> {
    let codec: WasmFrameCodec;
    if (encoding.compression === Compression.JPEGLS) codec = 'jpegls';
    else if (encoding.compression === Compression.HTJ2K) codec = 'htj2k';
    else throw new UnsupportedFormat(`compression ${encoding.compression} is not JPEG-LS or HTJ2K`);
    // The worker gets its own copy: transferring would detach the caller's (possibly cached) bytes.
    const copy = bytes.slice();
    const task: WasmFrameTask = { bytes: copy, ycbcr: encoding.photometric === Photometric.YCbCr, maxBytes };
    const result = await this.pool(codec).run(task, [copy.buffer], signal);
    return { data: result.data, width: result.width, height: result.height, channels: result.channels };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }
}
