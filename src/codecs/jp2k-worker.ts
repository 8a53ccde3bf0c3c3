// Worker thread body for JPEG 2000: decodes one codestream with the OpenJPEG WASM build from
// @cornerstonejs/codec-openjpeg and posts back either interleaved 8-bit display pixels (slide
// tiles) or, for a `samples` task, the samples at their stored precision — 8 or 16 bits, signed
// or not — which radiology needs (Hounsfield units, not grey levels: volumes/frame-samples.ts).
// Runs off the main thread because the WASM decoder is synchronous (tens of ms per 256x256
// tile). See worker-pool.ts for the protocol and jp2k.ts for the checks done before a task gets here.

import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from './worker-pool.js';
import { ycbcrToRgbInPlace } from './ycbcr.js';

export interface Jp2kTask {
  bytes: Uint8Array;
  /** Convert YCbCr components to RGB unless the decoder already did (chroma-subsampled input). */
  ycbcr: boolean;
}

export interface Jp2kResult {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** Samples at their stored precision (radiology frames). */
export interface Jp2kSampleTask {
  bytes: Uint8Array;
  samples: true;
  /** Largest decoded frame accepted, in samples. */
  maxSamples: number;
}

export interface Jp2kSampleResult {
  /** Little-endian samples: 1 byte each when bitsPerSample <= 8, else 2. */
  data: Uint8Array;
  width: number;
  height: number;
  bitsPerSample: number;
  signed: boolean;
  components: number;
}

/** The parts of the Emscripten module and embind class this worker uses. */
interface J2KDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  getDecodedBuffer(): Uint8ClampedArray;
  decode(): void;
  getFrameInfo(): {
    width: number;
    height: number;
    bitsPerSample: number;
    componentCount: number;
    isSigned: boolean;
  };
  getColorSpace(): number;
  delete(): void;
}
interface OpenJpegModule {
  J2KDecoder: new () => J2KDecoder;
}
type OpenJpegFactory = (options: {
  print: (s: string) => void;
  printErr: (s: string) => void;
}) => Promise<OpenJpegModule>;

/** OPJ_CLRSPC_SRGB: the decoder converted sYCC (subsampled chroma) to RGB itself. */
const COLOR_SPACE_SRGB = 1;

const require = createRequire(import.meta.url);
const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as OpenJpegFactory;

/** Messages OpenJPEG printed during the current decode (its only error channel). */
let messages: string[] = [];
const collect = (line: string): void => {
  if (messages.length < 20) messages.push(line.trim());
};
let module: Promise<OpenJpegModule> = factory({ print: collect, printErr: collect });

/** OpenJPEG said no (bad data) without trapping: the module is still good. */
class DecoderReportedError extends Error {}

function decode(mod: OpenJpegModule, task: Jp2kTask | Jp2kSampleTask): Jp2kResult | Jp2kSampleResult {
  const decoder = new mod.J2KDecoder();
  try {
    decoder.getEncodedBuffer(task.bytes.length).set(task.bytes);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const decoded = decoder.getDecodedBuffer();
    if ('samples' in task) return storedSamples(info, decoded, task.maxSamples);
    const channels = info.componentCount;
    if (decoded.length === 0 || (channels !== 1 && channels !== 3) || info.bitsPerSample > 8) {
      throw new DecoderReportedError(
        messages.filter((m) => m.includes('ERROR')).join('; ') ||
          `decoder produced ${channels} components of ${info.bitsPerSample} bits`,
      );
    }
    // getDecodedBuffer() copies out of WASM memory, so the buffer can be transferred.
    const data = new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.byteLength);
    if (task.ycbcr && channels === 3 && decoder.getColorSpace() !== COLOR_SPACE_SRGB) ycbcrToRgbInPlace(data);
    return { data, width: info.width, height: info.height, channels };
  } finally {
    decoder.delete();
  }
}

function storedSamples(
  info: ReturnType<J2KDecoder['getFrameInfo']>,
  decoded: Uint8ClampedArray,
  maxSamples: number,
): Jp2kSampleResult {
  const samples = info.width * info.height * info.componentCount;
  if (info.width < 1 || info.height < 1 || samples > maxSamples) {
    throw new DecoderReportedError(
      `decoded frame of ${info.width}x${info.height}x${info.componentCount} is out of bounds`,
    );
  }
  const bytesPer = info.bitsPerSample > 8 ? 2 : 1;
  if (decoded.length < samples * bytesPer) {
    throw new DecoderReportedError(
      messages.filter((m) => m.includes('ERROR')).join('; ') || 'decoder produced no samples',
    );
  }
  return {
    data: new Uint8Array(decoded.buffer, decoded.byteOffset, samples * bytesPer),
    width: info.width,
    height: info.height,
    bitsPerSample: info.bitsPerSample,
    signed: info.isSigned,
    components: info.componentCount,
  };
}

parentPort?.on('message', (message: { id: number; request: Jp2kTask | Jp2kSampleTask }) => {
  const { id, request } = message;
  messages = [];
  module.then(
    (mod) => {
      let reply: WorkerReply<Jp2kResult | Jp2kSampleResult>;
      try {
        const result = decode(mod, request);
        reply = { id, ok: true, result };
        parentPort?.postMessage(reply, [result.data.buffer as ArrayBuffer]);
        return;
      } catch (e) {
        // A WASM trap or Emscripten abort may leave the module unusable; start a fresh instance.
        if (!(e instanceof DecoderReportedError)) module = factory({ print: collect, printErr: collect });
        reply = {
          id,
          ok: false,
          error: { code: 'decode_error', message: `JPEG 2000 data is corrupt: ${(e as Error).message}` },
        };
      }
      parentPort?.postMessage(reply);
    },
    (e: unknown) => {
      const reply: WorkerReply<Jp2kResult | Jp2kSampleResult> = {
        id,
        ok: false,
        error: { code: 'decode_error', message: `OpenJPEG failed to load: ${(e as Error).message}` },
      };
      parentPort?.postMessage(reply);
    },
  );
});

// The pool's time limit for a task runs from here (a failed load still answers every task).
const ready: WorkerReply<Jp2kResult> = { ready: true };
void module.then(
  () => parentPort?.postMessage(ready),
  () => parentPort?.postMessage(ready),
);
