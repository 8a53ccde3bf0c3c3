// Worker thread body for radiology frames: decodes one JPEG 2000 codestream (DICOM transfer
// syntaxes .90/.91) with the same OpenJPEG WASM build codecs/jp2k-worker.ts uses, but keeps the
// samples at their stored precision (8 or 16 bits, signed or not) instead of reducing them to
// 8-bit display pixels: CT needs Hounsfield units, not grey levels. Protocol: codecs/worker-pool.ts.

import { createRequire } from 'node:module';
import { parentPort } from 'node:worker_threads';
import type { WorkerReply } from '../codecs/worker-pool.js';

export interface SampleTask {
  bytes: Uint8Array;
  /** Largest decoded frame accepted, in samples. */
  maxSamples: number;
}

export interface SampleResult {
  /** Little-endian samples: 1 byte each when bitsPerSample <= 8, else 2. */
  data: Uint8Array;
  width: number;
  height: number;
  bitsPerSample: number;
  signed: boolean;
  components: number;
}

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
  delete(): void;
}
interface OpenJpegModule {
  J2KDecoder: new () => J2KDecoder;
}
type OpenJpegFactory = (options: {
  print: (s: string) => void;
  printErr: (s: string) => void;
}) => Promise<OpenJpegModule>;

const require = createRequire(import.meta.url);
const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as OpenJpegFactory;
let messages: string[] = [];
const collect = (line: string): void => {
  if (messages.length < 20) messages.push(line.trim());
};
let module: Promise<OpenJpegModule> = factory({ print: collect, printErr: collect });

class ReportedError extends Error {}

function decode(mod: OpenJpegModule, task: SampleTask): SampleResult {
  const decoder = new mod.J2KDecoder();
  try {
    decoder.getEncodedBuffer(task.bytes.length).set(task.bytes);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const samples = info.width * info.height * info.componentCount;
    if (info.width < 1 || info.height < 1 || samples > task.maxSamples) {
      throw new ReportedError(
        `decoded frame of ${info.width}x${info.height}x${info.componentCount} is out of bounds`,
      );
    }
    const decoded = decoder.getDecodedBuffer();
    const bytesPer = info.bitsPerSample > 8 ? 2 : 1;
    if (decoded.length < samples * bytesPer) {
      throw new ReportedError(
        messages.filter((m) => m.includes('ERROR')).join('; ') || 'decoder produced no samples',
      );
    }
    const data = new Uint8Array(decoded.buffer, decoded.byteOffset, samples * bytesPer);
    return {
      data,
      width: info.width,
      height: info.height,
      bitsPerSample: info.bitsPerSample,
      signed: info.isSigned,
      components: info.componentCount,
    };
  } finally {
    decoder.delete();
  }
}

parentPort?.on('message', (message: { id: number; request: SampleTask }) => {
  const { id, request } = message;
  messages = [];
  module.then(
    (mod) => {
      let reply: WorkerReply<SampleResult>;
      try {
        const result = decode(mod, request);
        reply = { id, ok: true, result };
        parentPort?.postMessage(reply, [result.data.buffer as ArrayBuffer]);
        return;
      } catch (e) {
        if (!(e instanceof ReportedError)) module = factory({ print: collect, printErr: collect });
        reply = {
          id,
          ok: false,
          error: { code: 'decode_error', message: `JPEG 2000 data is corrupt: ${(e as Error).message}` },
        };
      }
      parentPort?.postMessage(reply);
    },
    (e: unknown) => {
      const reply: WorkerReply<SampleResult> = {
        id,
        ok: false,
        error: { code: 'decode_error', message: `OpenJPEG failed to load: ${(e as Error).message}` },
      };
      parentPort?.postMessage(reply);
    },
  );
});

const ready: WorkerReply<SampleResult> = { ready: true };
void module.then(
  () => parentPort?.postMessage(ready),
  () => parentPort?.postMessage(ready),
);
