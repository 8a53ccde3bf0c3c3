// Turns the stored bytes of one single-channel radiology frame into its native little-endian
// pixels (decodeNative: what WADO-RS transcoding sends) and into real-world values (decodeInto:
// HU for CT, through the Modality LUT). Native pixels are unpacked here (BitsStored masking, sign
// extension; explicit VR big endian frames are byte-swapped first); RLE is decoded in place (codecs/dicom-rle.ts); JPEG 2000, JPEG-LS, HTJ2K and JPEG
// (8-bit DCT, lossless process 14) frames are decoded at full precision in bounded worker pools
// (codecs/jp2k-worker.ts, codecs/wasm-frame-worker.ts). Built once in cli/ and passed down.

import os from 'node:os';
import { DecodeError, UnsupportedFormat } from '../errors.js';
import { toLittleEndian } from '../dicom/parser.js';
import { TransferSyntax } from '../dicom/tags.js';
import { decodeDicomRle } from '../codecs/dicom-rle.js';
import { WorkerPool } from '../codecs/worker-pool.js';
import type { Jp2kSampleResult, Jp2kSampleTask } from '../codecs/jp2k-worker.js';
import type { WasmFrameCodec, WasmFrameResult, WasmFrameTask } from '../codecs/wasm-frame-worker.js';

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

const RLE_LOSSLESS = '1.2.840.10008.1.2.5';
const NATIVE = new Set<string>([
  TransferSyntax.ExplicitVrLittleEndian,
  TransferSyntax.ImplicitVrLittleEndian,
  // Frames of a deflated object are read from its inflated copy: native little endian.
  TransferSyntax.DeflatedExplicitVrLittleEndian,
]);
const JP2K = new Set<string>([TransferSyntax.Jpeg2000Lossless, TransferSyntax.Jpeg2000]);
/** Syntaxes decoded by a WASM worker pool, and which. */
const WASM_CODEC = new Map<string, WasmFrameCodec>([
  [TransferSyntax.JpegLsLossless, 'jpegls'],
  [TransferSyntax.JpegLsNearLossless, 'jpegls'],
  [TransferSyntax.Htj2kLossless, 'htj2k'],
  [TransferSyntax.Htj2kLosslessRpcl, 'htj2k'],
  [TransferSyntax.Htj2k, 'htj2k'],
  [TransferSyntax.JpegBaseline, 'jpeg'],
  [TransferSyntax.JpegExtended, 'jpeg'],
  ['1.2.840.10008.1.2.4.57', 'jpeg'],
  ['1.2.840.10008.1.2.4.70', 'jpeg'],
]);

/** Transfer syntaxes whose frames this decoder reads. */
export const VOLUME_TRANSFER_SYNTAXES: readonly string[] = [
  ...NATIVE,
  TransferSyntax.ExplicitVrBigEndian,
  ...JP2K,
  ...WASM_CODEC.keys(),
  RLE_LOSSLESS,
];

function codecScript(name: string): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`../codecs/${name}${extension}`, self);
}

export interface FrameSampleDecoderOptions {
  /** Worker threads per codec pool (default: one per core). */
  workers?: number;
  /** Decodes waiting for a worker per codec at most; beyond it decodes fail as `overloaded`. */
  maxQueue?: number;
  taskTimeoutMs?: number;
}

export class FrameSampleDecoder {
  private pool: WorkerPool<Jp2kSampleTask, Jp2kSampleResult> | undefined;
  private readonly wasm = new Map<WasmFrameCodec, WorkerPool<WasmFrameTask, WasmFrameResult>>();

  constructor(private readonly options: FrameSampleDecoderOptions = {}) {}

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
    const native = NATIVE.has(transferSyntax)
      ? bytes
      : await this.decodeNative(bytes, transferSyntax, info, signal);
    const samples = unpackNative(native, info);
    if (samples.length < count)
      throw new DecodeError(`frame decoded to ${samples.length} samples, expected ${count}`);
    const { rescaleSlope: slope, rescaleIntercept: inter } = info;
    for (let i = 0; i < count; i++) out[offset + i] = samples[i] * slope + inter;
  }

  /**
   * One compressed single-channel frame decoded to the bytes of the same frame as native
   * little-endian pixels (BitsAllocated / 8 bytes each, signed or not as stored): what transcoding
   * to explicit VR little endian sends.
   */
  async decodeNative(
    bytes: Uint8Array,
    transferSyntax: string,
    info: FramePixelInfo,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    if (info.bitsAllocated !== 8 && info.bitsAllocated !== 16) {
      throw new UnsupportedFormat(`BitsAllocated ${info.bitsAllocated} is not decoded (8 or 16)`);
    }
    const size = info.rows * info.columns * (info.bitsAllocated / 8);
    if (NATIVE.has(transferSyntax)) return bytes;
    if (transferSyntax === TransferSyntax.ExplicitVrBigEndian) {
      if (bytes.length < size) throw new DecodeError(`native frame has ${bytes.length} bytes, needs ${size}`);
      return info.bitsAllocated === 16 ? toLittleEndian(bytes.subarray(0, size), 'OW') : bytes;
    }
    if (transferSyntax === RLE_LOSSLESS) {
      return decodeDicomRle(bytes, { ...info, samplesPerPixel: 1 });
    }
    if (JP2K.has(transferSyntax)) return packNative(await this.decodeJp2k(bytes, info, signal), info);
    const codec = WASM_CODEC.get(transferSyntax);
    if (codec === undefined) {
      throw new UnsupportedFormat(
        `transfer syntax ${transferSyntax} is not decoded (supported: ${VOLUME_TRANSFER_SYNTAXES.join(', ')})`,
      );
    }
    const copy = bytes.slice();
    const result = await this.wasmPool(codec).run(
      { bytes: copy, ycbcr: false, maxBytes: size, samples: true },
      [copy.buffer],
      signal,
    );
    if (result.width !== info.columns || result.height !== info.rows || result.channels !== 1) {
      throw new DecodeError(
        `${codec} frame is ${result.width}x${result.height}x${result.channels}, the instance says ${info.columns}x${info.rows}x1`,
      );
    }
    return resize(result.data, (result.bitsPerSample ?? 8) > 8 ? 2 : 1, info);
  }

  /**
   * One 8-bit colour frame of a compressed syntax (DCT and lossless JPEG, JPEG-LS, JPEG 2000,
   * HTJ2K) as interleaved samples as the codec leaves them: RGB for DCT JPEG (libjpeg applies its
   * colour transform) and for JPEG 2000 / HTJ2K with a component transform (the decoder inverts
   * it); otherwise the stored components.
   */
  async decodeColour(
    bytes: Uint8Array,
    transferSyntax: string,
    info: { rows: number; columns: number },
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    if (JP2K.has(transferSyntax)) {
      const result = await this.jp2kSamples(bytes, info.rows * info.columns * 3, signal);
      if (
        result.width !== info.columns ||
        result.height !== info.rows ||
        result.components !== 3 ||
        result.bitsPerSample > 8
      ) {
        throw new DecodeError(
          `JPEG 2000 frame is ${result.width}x${result.height}x${result.components} of ${result.bitsPerSample} bits, the instance says ${info.columns}x${info.rows}x3 of 8`,
        );
      }
      return result.data;
    }
    const codec = WASM_CODEC.get(transferSyntax);
    if (codec === undefined)
      throw new UnsupportedFormat(`colour frames of ${transferSyntax} are not decoded`);
    const copy = bytes.slice();
    const size = info.rows * info.columns * 3;
    const result = await this.wasmPool(codec).run(
      { bytes: copy, ycbcr: false, maxBytes: size },
      [copy.buffer],
      signal,
    );
    if (result.width !== info.columns || result.height !== info.rows || result.channels !== 3) {
      throw new DecodeError(
        `${codec} frame is ${result.width}x${result.height}x${result.channels}, the instance says ${info.columns}x${info.rows}x3`,
      );
    }
    return result.data;
  }

  private wasmPool(codec: WasmFrameCodec): WorkerPool<WasmFrameTask, WasmFrameResult> {
    let pool = this.wasm.get(codec);
    if (!pool) {
      pool = new WorkerPool<WasmFrameTask, WasmFrameResult>({
        script: codecScript(`${codec}-worker`),
        size: Math.max(1, this.options.workers || os.availableParallelism()),
        maxQueue: this.options.maxQueue ?? 4096,
        taskTimeoutMs: this.options.taskTimeoutMs ?? 30_000,
        name: `medstream-frames-${codec}`,
      });
      this.wasm.set(codec, pool);
    }
    return pool;
  }

  private jp2kSamples(
    bytes: Uint8Array,
    maxSamples: number,
    signal?: AbortSignal,
  ): Promise<Jp2kSampleResult> {
    this.pool ??= new WorkerPool<Jp2kSampleTask, Jp2kSampleResult>({
      script: codecScript('jp2k-worker'),
      size: Math.max(1, this.options.workers || os.availableParallelism()),
      maxQueue: this.options.maxQueue ?? 4096,
      taskTimeoutMs: this.options.taskTimeoutMs ?? 30_000,
      name: 'medstream-frames-jp2k',
    });
    const copy = bytes.slice();
    return this.pool.run({ bytes: copy, samples: true, maxSamples }, [copy.buffer], signal);
  }

  private async decodeJp2k(
    bytes: Uint8Array,
    info: FramePixelInfo,
    signal?: AbortSignal,
  ): Promise<Int32Array> {
    const result = await this.jp2kSamples(bytes, info.rows * info.columns, signal);
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

  async close(): Promise<void> {
    await this.pool?.close();
    await Promise.all([...this.wasm.values()].map((p) => p.close()));
  }
}

/** Decoded samples as native little-endian pixels of BitsAllocated. */
function packNative(samples: Int32Array, info: FramePixelInfo): Uint8Array {
  const count = info.rows * info.columns;
  if (samples.length < count)
    throw new DecodeError(`frame decoded to ${samples.length} samples, expected ${count}`);
  const size = info.bitsAllocated / 8;
  const out = new Uint8Array(count * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < count; i++) {
    if (size === 1) out[i] = samples[i] & 0xff;
    else view.setUint16(2 * i, samples[i] & 0xffff, true);
  }
  return out;
}

/** Samples of `from` bytes each as samples of BitsAllocated (8-bit data in 16-bit pixels). */
function resize(data: Uint8Array, from: 1 | 2, info: FramePixelInfo): Uint8Array {
  const count = info.rows * info.columns;
  const to = info.bitsAllocated / 8;
  if (data.length !== count * from)
    throw new DecodeError(`frame decoded to ${data.length} bytes, expected ${count * from}`);
  if (from === to) return data;
  const out = new Uint8Array(count * to);
  if (from === 1) {
    const signed = info.pixelRepresentation === 1;
    for (let i = 0; i < count; i++) {
      out[2 * i] = data[i];
      out[2 * i + 1] = signed && data[i] & 0x80 ? 0xff : 0;
    }
  } else {
    for (let i = 0; i < count; i++) out[i] = data[2 * i];
  }
  return out;
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
