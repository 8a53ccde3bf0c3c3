// Worker thread body of the derived-frame encoders: HTJ2K (OpenJPH, @cornerstonejs/codec-openjph)
// and JPEG-LS (CharLS, @cornerstonejs/codec-charls), both synchronous WASM run off the main thread.
// One codec per thread (two embind modules in one thread collide), so htj2k-encode-worker.ts and
// jpegls-encode-worker.ts each start this with their own codec. Posts back the codestream.

import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from './worker-pool.js';

export type WasmEncodeCodec = 'htj2k' | 'jpegls';

export interface WasmEncodeTask {
  /** Samples, little endian: one byte each up to 8 bits per sample, two above. */
  samples: Uint8Array;
  width: number;
  height: number;
  /** Bits per sample written in the codestream (1-16). */
  bitsPerSample: number;
  /** Two's complement samples (HTJ2K only; JPEG-LS codes the bit pattern). */
  signed: boolean;
  /**
   * HTJ2K: absent = reversible (lossless) 5-3 wavelet; present = irreversible with this
   * quantization step (OpenJPH's `qstep`, relative to the sample range).
   */
  quantizationStep?: number;
}

export interface WasmEncodeResult {
  bytes: Uint8Array;
}

interface EncoderFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned: boolean;
  isUsingColorTransform: boolean;
}
/** The part of both embind encoder classes this worker uses. */
interface WasmEncoder {
  getDecodedBuffer(info: EncoderFrameInfo): Uint8Array;
  getEncodedBuffer(): Uint8Array;
  encode(): void;
  delete(): void;
  // HTJ2K
  setDecompositions?(n: number): void;
  setQuality?(reversible: boolean, qstep: number): void;
  setProgressionOrder?(order: number): void;
  setTLMMarker?(on: boolean): void;
  setTilePartDivisionsAtResolutions?(on: boolean): void;
  setBlockDimensions?(size: { width: number; height: number }): void;
  // JPEG-LS
  setNearLossless?(n: number): void;
}
type CodecModule = Record<string, new () => WasmEncoder>;
type Factory = (options: {
  print: (s: string) => void;
  printErr: (s: string) => void;
}) => Promise<CodecModule>;

const SPECS: Record<WasmEncodeCodec, { module: string; encoder: string; name: string }> = {
  htj2k: { module: '@cornerstonejs/codec-openjph/wasmjs', encoder: 'HTJ2KEncoder', name: 'HTJ2K' },
  jpegls: { module: '@cornerstonejs/codec-charls/wasmjs', encoder: 'JpegLSEncoder', name: 'JPEG-LS' },
};

/** RPCL in OpenJPH's numbering (LRCP 0, RLCP 1, RPCL 2, PCRL 3, CPRL 4). */
const RPCL = 2;

/** Wavelet levels: 5 (Cornerstone's choice for 512² CT) or fewer for small images. */
export function decompositionsFor(width: number, height: number): number {
  let levels = 0;
  while (levels < 5 && Math.min(width, height) >> (levels + 1) >= 8) levels++;
  return levels;
}

class BadTask extends Error {}

function encode(mod: CodecModule, codec: WasmEncodeCodec, task: WasmEncodeTask): WasmEncodeResult {
  const bytesPerSample = task.bitsPerSample > 8 ? 2 : 1;
  if (task.samples.length !== task.width * task.height * bytesPerSample)
    throw new BadTask(`${task.samples.length} sample bytes for a ${task.width}x${task.height} frame`);
  const encoder = new mod[SPECS[codec].encoder]();
  try {
    const info: EncoderFrameInfo = {
      width: task.width,
      height: task.height,
      bitsPerSample: task.bitsPerSample,
      componentCount: 1,
      isSigned: task.signed,
      isUsingColorTransform: false,
    };
    encoder.getDecodedBuffer(info).set(task.samples);
    if (codec === 'htj2k') {
      encoder.setDecompositions!(decompositionsFor(task.width, task.height));
      encoder.setQuality!(task.quantizationStep === undefined, task.quantizationStep ?? 0);
      encoder.setProgressionOrder!(RPCL);
      encoder.setBlockDimensions!({ width: 64, height: 64 });
      encoder.setTLMMarker!(true);
      // One tile-part per resolution: the TLM then indexes where each resolution ends.
      encoder.setTilePartDivisionsAtResolutions!(true);
    } else {
      encoder.setNearLossless!(0);
    }
    encoder.encode();
    const out = encoder.getEncodedBuffer();
    // A copy out of WASM memory, so the buffer can be transferred.
    return { bytes: out.slice() };
  } finally {
    encoder.delete();
  }
}

/** Runs this thread as the worker of one encoder (see worker-pool.ts for the protocol). */
export function serveWasmFrameEncoder(codec: WasmEncodeCodec): void {
  const spec = SPECS[codec];
  const factory = createRequire(import.meta.url)(spec.module) as Factory;
  const load = () => factory({ print: () => undefined, printErr: () => undefined });
  let module = load();

  parentPort?.on('message', (message: { id: number; request: WasmEncodeTask }) => {
    const { id, request } = message;
    const fail = (text: string) => {
      const reply: WorkerReply<WasmEncodeResult> = {
        id,
        ok: false,
        error: { code: 'unsupported_format', message: text },
      };
      parentPort?.postMessage(reply);
    };
    module.then(
      (mod) => {
        try {
          const result = encode(mod, codec, request);
          const reply: WorkerReply<WasmEncodeResult> = { id, ok: true, result };
          parentPort?.postMessage(reply, [result.bytes.buffer as ArrayBuffer]);
        } catch (e) {
          // C++ exceptions arrive as numbers and may leave the module unusable: reload it, so one
          // failed encode never poisons the next.
          if (!(e instanceof BadTask)) module = load();
          const why = e instanceof Error ? e.message : `encoder exception ${String(e)}`;
          fail(`${spec.name} encoder refused the frame: ${why}`);
        }
      },
      (e: unknown) => fail(`${spec.name} encoder failed to load: ${(e as Error).message}`),
    );
  });

  const ready: WorkerReply<WasmEncodeResult> = { ready: true };
  void module.then(
    () => parentPort?.postMessage(ready),
    () => parentPort?.postMessage(ready),
  );
}
