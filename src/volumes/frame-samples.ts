// Turns the stored bytes of one single-channel radiology frame into real-world values (HU for
// CT): native little-endian pixels are unpacked here (BitsStored masking, sign extension), JPEG
// 2000 frames are decoded at full precision in worker threads (codecs/jp2k-worker.ts, `samples` tasks), and the
// Modality LUT (RescaleSlope / RescaleIntercept) is applied. Built once in cli/ and passed down.

import os from 'node:os';
import { DecodeError, UnsupportedFormat } from '../errors.js';
import { TransferSyntax } from '../dicom/tags.js';
import { WorkerPool } from '../codecs/worker-pool.js';
import type { Jp2kSampleResult, Jp2kSampleTask } from '../codecs/jp2k-worker.js';
import type { WasmFrameResult, WasmFrameTask } from '../codecs/wasm-frame-worker.js';

/** What the decoder needs to know about a frame (from the instance's Image Pixel module). */
export interface FramePixelInfo {
  rows: number;
  columns: number;
  bitsAllocated: number;
  bitsStored: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  rescaleSlope: number;
  rescaleIntercept: number;
}

/** Transfer syntaxes whose frames this decoder reads. */
export const VOLUME_TRANSFER_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.Jpeg2000,
  TransferSyntax.JpegLsLossless,
  TransferSyntax.JpegLsNearLossless,
];

const JPEG_LS = new Set<string>([TransferSyntax.JpegLsLossless, TransferSyntax.JpegLsNearLossless]);

function codecScript(name: string): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`../codecs/${name}${extension}`, self);
}

export class FrameSampleDecoder {
  private pool: WorkerPool<Jp2kSampleTask, Jp2kSampleResult> | undefined;
  private jpegLs: WorkerPool<WasmFrameTask, WasmFrameResult> | undefined;

  constructor(private readonly options: { workers?: number } = {}) {}

  /** Decodes one frame to `rows * columns` real-world values, written into `out` at `offset`. */
  async decodeInto(
    bytes: Uint8Array,
    transferSyntax: string,
    info: FramePixelInfo,
    out: Float32Array,
    offset: number,
    signal?: AbortSignal,
  ): Promise<void> {
    const count = info.rows * info.columns;
    let samples: ArrayLike<number>;
    if (
      transferSyntax === TransferSyntax.ExplicitVrLittleEndian ||
      transferSyntax === TransferSyntax.ImplicitVrLittleEndian
    ) {
      samples = unpackNative(bytes, info);
    } else if (
      transferSyntax === TransferSyntax.Jpeg2000Lossless ||
      transferSyntax === TransferSyntax.Jpeg2000
    ) {
      samples = await this.decodeJp2k(bytes, info, signal);
    } else if (JPEG_LS.has(transferSyntax)) {
      // The decoded samples are laid out as native pixels: unpacked (and sign-extended) as those.
      samples = unpackNative(await this.decodeJpegLsRaw(bytes, info, signal), info);
    } else {
      throw new UnsupportedFormat(
        `transfer syntax ${transferSyntax} is not supported for volumes (supported: ${VOLUME_TRANSFER_SYNTAXES.join(', ')})`,
      );
    }
    if (samples.length < count)
      throw new DecodeError(`frame decoded to ${samples.length} samples, expected ${count}`);
    const { rescaleSlope: slope, rescaleIntercept: inter } = info;
    for (let i = 0; i < count; i++) out[offset + i] = samples[i] * slope + inter;
  }

  /**
   * The stored samples of one JPEG 2000 frame at their stored precision (no Modality LUT), for
   * transcoding to an uncompressed transfer syntax (WADO-RS).
   */
  decodeJp2kSamples(
    bytes: Uint8Array,
    info: FramePixelInfo,
    signal?: AbortSignal,
  ): Promise<ArrayLike<number>> {
    return this.decodeJp2k(bytes, info, signal);
  }

  private async decodeJp2k(
    bytes: Uint8Array,
    info: FramePixelInfo,
    signal?: AbortSignal,
  ): Promise<ArrayLike<number>> {
    this.pool ??= new WorkerPool<Jp2kSampleTask, Jp2kSampleResult>({
      script: codecScript('jp2k-worker'),
      size: Math.max(1, this.options.workers ?? os.availableParallelism()),
      maxQueue: 4096,
      taskTimeoutMs: 30_000,
      name: 'medstream-volume-jp2k',
    });
    const copy = bytes.slice();
    const result = await this.pool.run(
      { bytes: copy, samples: true, maxSamples: info.rows * info.columns },
      [copy.buffer],
      signal,
    );
    if (result.width !== info.columns || result.height !== info.rows || result.components !== 1) {
      throw new DecodeError(
        `JPEG 2000 frame is ${result.width}x${result.height}x${result.components}, the instance says ${info.columns}x${info.rows}x1`,
      );
    }
    const view = new DataView(result.data.buffer, result.data.byteOffset, result.data.byteLength);
    const n = result.width * result.height;
    const out = new Int32Array(n);
    if (result.bitsPerSample <= 8) {
      for (let i = 0; i < n; i++) out[i] = result.signed ? view.getInt8(i) : view.getUint8(i);
    } else {
      for (let i = 0; i < n; i++)
        out[i] = result.signed ? view.getInt16(2 * i, true) : view.getUint16(2 * i, true);
    }
    return out;
  }

  /**
   * One JPEG-LS frame decoded to the bytes of the same frame as native little-endian pixels
   * (CharLS in worker threads, codecs/jpegls-worker.ts), for transcoding and for volumes.
   */
  async decodeJpegLsRaw(bytes: Uint8Array, info: FramePixelInfo, signal?: AbortSignal): Promise<Uint8Array> {
    this.jpegLs ??= new WorkerPool<WasmFrameTask, WasmFrameResult>({
      script: codecScript('jpegls-worker'),
      size: Math.max(1, this.options.workers ?? os.availableParallelism()),
      maxQueue: 4096,
      taskTimeoutMs: 30_000,
      name: 'medstream-volume-jpegls',
    });
    const copy = bytes.slice();
    const size = info.rows * info.columns * (info.bitsAllocated > 8 ? 2 : 1);
    const result = await this.jpegLs.run(
      { bytes: copy, ycbcr: false, maxBytes: size, samples: true },
      [copy.buffer],
      signal,
    );
    if (result.width !== info.columns || result.height !== info.rows || result.data.length !== size) {
      throw new DecodeError(
        `JPEG-LS frame is ${result.width}x${result.height} of ${result.bitsPerSample} bits, the instance says ${info.columns}x${info.rows} of ${info.bitsAllocated}`,
      );
    }
    return result.data;
  }

  async close(): Promise<void> {
    await this.pool?.close();
    await this.jpegLs?.close();
  }
}

/** Native little-endian samples: only BitsStored bits count; signed values are sign-extended. */
export function unpackNative(bytes: Uint8Array, info: FramePixelInfo): Int32Array {
  const n = info.rows * info.columns;
  if (info.bitsAllocated !== 8 && info.bitsAllocated !== 16) {
    throw new UnsupportedFormat(`BitsAllocated ${info.bitsAllocated} is not supported (8 or 16)`);
  }
  const size = info.bitsAllocated / 8;
  if (bytes.length < n * size)
    throw new DecodeError(`native frame has ${bytes.length} bytes, needs ${n * size}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = Math.min(info.bitsStored || info.bitsAllocated, info.bitsAllocated);
  const mask = stored >= 32 ? 0xffffffff : (1 << stored) - 1;
  const signBit = 1 << (stored - 1);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let v = (size === 2 ? view.getUint16(2 * i, true) : view.getUint8(i)) & mask;
    if (info.pixelRepresentation === 1 && v & signBit) v -= 1 << stored;
    out[i] = v;
  }
  return out;
}
