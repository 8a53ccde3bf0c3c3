// Worker thread body shared by the DICOM-only codecs: JPEG-LS (CharLS, @cornerstonejs/codec-charls),
// HTJ2K (OpenJPH, @cornerstonejs/codec-openjph) and DICOM JPEG frames (libjpeg-turbo 8-bit,
// @cornerstonejs/codec-libjpeg-turbo-8bit; lossless process 14 streams by jpeg-lossless-decoder-js;
// 12-bit DCT by the JS decoder of @cornerstonejs/dicom-image-loader, jpeg12.ts),
// all synchronous decoders run off the main thread like JPEG 2000 (jp2k-worker.ts). One codec per
// thread: two embind modules in one thread collide ("Cannot register multiple overloads"), so
// jpegls-worker.ts, htj2k-worker.ts and jpeg-worker.ts each start this with their own codec.
// Posts back interleaved 8-bit pixels, or samples at stored precision.

import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from './worker-pool.js';
import { decodeJpeg12, Jpeg12Unsupported, loadJpeg12, type JpegImageClass } from './jpeg12.js';
import { ycbcrToRgbInPlace } from './ycbcr.js';

export type WasmFrameCodec = 'jpegls' | 'htj2k' | 'jpeg';

export interface WasmFrameTask {
  bytes: Uint8Array;
  /** The components are YCbCr (DICOM YBR_FULL): convert to RGB after decoding. */
  ycbcr: boolean;
  /** Largest decoded image accepted, in bytes. */
  maxBytes: number;
  /**
   * Keep the samples at their stored precision (up to 16 bits, one component) instead of 8-bit
   * display pixels: radiology frames (volumes/frame-samples.ts). `ycbcr` is ignored then.
   */
  samples?: boolean;
}

export interface WasmFrameResult {
  /** 8-bit pixels; for a `samples` task, little-endian samples of `bitsPerSample` (2 bytes above 8). */
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
  bitsPerSample?: number;
}

interface FrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
}
/** The part of both embind decoder classes this worker uses. */
interface WasmDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8Array | Uint8ClampedArray | Uint16Array;
  decode(): void;
  getFrameInfo(): FrameInfo;
  delete(): void;
}
type CodecModule = Record<string, new () => WasmDecoder>;
type Factory = (options: {
  print: (s: string) => void;
  printErr: (s: string) => void;
}) => Promise<CodecModule>;

const SPECS: Record<WasmFrameCodec, { module: string; decoder: string; name: string }> = {
  jpegls: { module: '@cornerstonejs/codec-charls/decodewasmjs', decoder: 'JpegLSDecoder', name: 'JPEG-LS' },
  htj2k: { module: '@cornerstonejs/codec-openjph/wasmjs', decoder: 'HTJ2KDecoder', name: 'HTJ2K' },
  jpeg: {
    module: '@cornerstonejs/codec-libjpeg-turbo-8bit/decodewasmjs',
    decoder: 'JPEGDecoder',
    name: 'JPEG',
  },
};

/** The start-of-frame marker (0xC0..0xCF) and sample precision of a JPEG stream, if found. */
export function jpegFrameHeader(stream: Uint8Array): { marker: number; precision: number } | undefined {
  let pos = 2;
  while (pos + 4 < stream.length) {
    if (stream[pos] !== 0xff) return undefined;
    const marker = stream[pos + 1];
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { marker, precision: stream[pos + 4] };
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      pos += 2;
      continue;
    }
    pos += 2 + ((stream[pos + 2] << 8) | stream[pos + 3]);
  }
  return undefined;
}

/** The part of jpeg-lossless-decoder-js's Decoder used here (the package ships no types). */
interface LosslessJpegDecoder {
  decode(buffer: ArrayBuffer, offset: number, length: number, bytesPerSample: number): ArrayBufferView;
  frame: { dimX?: number; dimY?: number; numComp?: number };
}
let losslessModule: { Decoder: new () => LosslessJpegDecoder } | undefined;

/** A lossless (process 14, SOF3) JPEG frame's samples (1 component, or 3 of 8 bits), by jpeg-lossless-decoder-js. */
function losslessJpegSamples(bytes: Uint8Array, precision: number, maxBytes: number): WasmFrameResult {
  losslessModule ??= createRequire(import.meta.url)('jpeg-lossless-decoder-js') as {
    Decoder: new () => LosslessJpegDecoder;
  };
  const decoder = new losslessModule.Decoder();
  const size = precision > 8 ? 2 : 1;
  let decoded: ArrayBufferView;
  try {
    decoded = decoder.decode(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, size);
  } catch (e) {
    throw new DecoderReportedError((e as Error).message);
  }
  const width = decoder.frame.dimX ?? 0;
  const height = decoder.frame.dimY ?? 0;
  const components = decoder.frame.numComp ?? 0;
  if (components !== 1 && !(components === 3 && size === 1))
    throw new UnsupportedError(
      `lossless JPEG frames of ${components} components of ${precision} bits are not decoded`,
    );
  const length = width * height * size * components;
  if (length > maxBytes)
    throw new UnsupportedError(`JPEG frame of ${width}x${height} exceeds the decode limit`);
  if (decoded.byteLength < length)
    throw new DecoderReportedError('decoder produced fewer samples than the frame holds');
  const data = new Uint8Array(decoded.buffer.slice(decoded.byteOffset, decoded.byteOffset + length));
  // Components come out interleaved, as stored (no colour transform).
  return { data, width, height, channels: components, bitsPerSample: precision };
}

/** The decoder said no (bad data) without trapping: the module is still good. */
class DecoderReportedError extends Error {}
class UnsupportedError extends Error {}

function decode(
  mod: CodecModule,
  codec: WasmFrameCodec,
  task: WasmFrameTask,
  jpeg12?: JpegImageClass,
): WasmFrameResult {
  if (codec === 'jpeg') {
    const header = jpegFrameHeader(task.bytes);
    if (header === undefined) throw new DecoderReportedError('no JPEG start of frame marker');
    if (header.marker === 0xc3) {
      // Display pixels (not `samples`) are 8-bit.
      if (!task.samples && header.precision > 8)
        throw new UnsupportedError(`${header.precision}-bit lossless JPEG is decoded to samples only`);
      return losslessJpegSamples(task.bytes, header.precision, task.maxBytes);
    }
    if (header.marker !== 0xc0 && header.marker !== 0xc1)
      throw new UnsupportedError(
        `JPEG process of marker 0xFF${header.marker.toString(16).toUpperCase()} is not decoded`,
      );
    if (header.precision === 12 && task.samples && jpeg12) {
      try {
        const { data, width, height } = decodeJpeg12(jpeg12, task.bytes, task.maxBytes);
        return { data, width, height, channels: 1, bitsPerSample: 12 };
      } catch (e) {
        if (e instanceof Jpeg12Unsupported) throw new UnsupportedError(e.message);
        throw new DecoderReportedError((e as Error).message);
      }
    }
    if (header.precision !== 8)
      throw new UnsupportedError(
        `${header.precision}-bit JPEG (extended, process 4) is not decoded: only 8-bit DCT`,
      );
  }
  const Decoder = mod[SPECS[codec].decoder];
  const decoder = new Decoder();
  try {
    decoder.getEncodedBuffer(task.bytes.length).set(task.bytes);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const channels = info.componentCount;
    if (info.width < 1 || info.height < 1 || (channels !== 1 && channels !== 3)) {
      throw new DecoderReportedError(
        `decoder produced ${info.width}x${info.height} with ${channels} components`,
      );
    }
    if (task.samples) return storedSamples(decoder, info, codec, task.maxBytes);
    if (info.bitsPerSample > 8)
      throw new UnsupportedError(`${info.bitsPerSample}-bit ${SPECS[codec].name} is not supported`);
    const size = info.width * info.height * channels;
    if (size > task.maxBytes) {
      throw new UnsupportedError(
        `${SPECS[codec].name} frame of ${info.width}x${info.height} exceeds the decode limit`,
      );
    }
    const decoded = decoder.getDecodedBuffer();
    if (decoded.byteLength < size)
      throw new DecoderReportedError('decoder produced fewer samples than the frame holds');
    // A copy out of WASM memory, so the buffer can be transferred.
    const data = new Uint8Array(decoded.buffer.slice(decoded.byteOffset, decoded.byteOffset + size));
    if (task.ycbcr && channels === 3) ycbcrToRgbInPlace(data);
    return { data, width: info.width, height: info.height, channels };
  } finally {
    decoder.delete();
  }
}

function storedSamples(
  decoder: WasmDecoder,
  info: FrameInfo,
  codec: WasmFrameCodec,
  maxBytes: number,
): WasmFrameResult {
  if (info.componentCount !== 1 || info.bitsPerSample > 16) {
    throw new UnsupportedError(
      `${SPECS[codec].name} frames of ${info.componentCount} components of ${info.bitsPerSample} bits are not decoded to samples`,
    );
  }
  const size = info.width * info.height * (info.bitsPerSample > 8 ? 2 : 1);
  if (size > maxBytes)
    throw new UnsupportedError(
      `${SPECS[codec].name} frame of ${info.width}x${info.height} exceeds the decode limit`,
    );
  const decoded = decoder.getDecodedBuffer();
  if (decoded.byteLength < size)
    throw new DecoderReportedError('decoder produced fewer samples than the frame holds');
  const data = new Uint8Array(decoded.buffer.slice(decoded.byteOffset, decoded.byteOffset + size));
  return { data, width: info.width, height: info.height, channels: 1, bitsPerSample: info.bitsPerSample };
}

/** Runs this thread as the worker of one codec (see worker-pool.ts for the protocol). */
export function serveWasmFrameDecoder(codec: WasmFrameCodec): void {
  const spec = SPECS[codec];
  const factory = createRequire(import.meta.url)(spec.module) as Factory;
  const load = () => factory({ print: () => undefined, printErr: () => undefined });
  let module = load();
  // 12-bit DCT JPEG: the JS decoder (jpeg12.ts), loaded with the thread; its failure to load only
  // leaves 12-bit frames refused.
  const jpeg12: Promise<JpegImageClass | undefined> =
    codec === 'jpeg' ? loadJpeg12().catch(() => undefined) : Promise.resolve(undefined);

  parentPort?.on('message', (message: { id: number; request: WasmFrameTask }) => {
    const { id, request } = message;
    const fail = (code: 'decode_error' | 'unsupported_format', text: string) => {
      const reply: WorkerReply<WasmFrameResult> = { id, ok: false, error: { code, message: text } };
      parentPort?.postMessage(reply);
    };
    Promise.all([module, jpeg12]).then(
      ([mod, jpeg]) => {
        try {
          const result = decode(mod, codec, request, jpeg);
          const reply: WorkerReply<WasmFrameResult> = { id, ok: true, result };
          parentPort?.postMessage(reply, [result.data.buffer as ArrayBuffer]);
        } catch (e) {
          if (e instanceof UnsupportedError) return fail('unsupported_format', e.message);
          // CharLS throws C++ exceptions as numbers; a trap may leave the module unusable: reload.
          if (!(e instanceof DecoderReportedError)) module = load();
          const why = e instanceof Error ? e.message : `decoder exception ${String(e)}`;
          fail('decode_error', `${spec.name} data is corrupt: ${why}`);
        }
      },
      (e: unknown) => fail('decode_error', `${spec.name} decoder failed to load: ${(e as Error).message}`),
    );
  });

  // The pool's time limit for a task runs from here (a failed load still answers every task).
  const ready: WorkerReply<WasmFrameResult> = { ready: true };
  void Promise.all([module, jpeg12]).then(
    () => parentPort?.postMessage(ready),
    () => parentPort?.postMessage(ready),
  );
}
