// Worker thread body of the `sam` engine's image encoder: turns one windowed slice (8-bit grey)
// into SAM's input (longest side resized to 1024, bilinear; grey to RGB; ImageNet mean/std;
// zero padding bottom/right) and runs the encoder ONNX on onnxruntime-node (~0.7 s on 2 cores, so
// it runs off the main thread). Protocol: codecs/worker-pool.ts. The model is loaded on the first task.

import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { WorkerReply } from '../codecs/worker-pool.js';

export interface EncodeTask {
  modelPath: string;
  /** ORT intra-op threads for this worker. */
  threads: number;
  pixels: Uint8Array;
  width: number;
  height: number;
}

export interface EncodeResult {
  /** [1, 256, 64, 64] image embedding. */
  embedding: Float32Array;
  dims: number[];
}

export const SAM_INPUT_SIZE = 1024;
const MEAN = [123.675, 116.28, 103.53];
const STD = [58.395, 57.12, 57.375];

/** SAM's input tensor data for one grey image (exported for tests). */
export function samInput(pixels: Uint8Array, width: number, height: number): Float32Array {
  const size = SAM_INPUT_SIZE;
  const scale = size / Math.max(width, height);
  const w = Math.round(width * scale);
  const h = Math.round(height * scale);
  const out = new Float32Array(3 * size * size);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(height - 1, Math.max(0, (y + 0.5) / scale - 0.5));
    const y0 = Math.floor(sy);
    const y1 = Math.min(height - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < w; x++) {
      const sx = Math.min(width - 1, Math.max(0, (x + 0.5) / scale - 0.5));
      const x0 = Math.floor(sx);
      const x1 = Math.min(width - 1, x0 + 1);
      const fx = sx - x0;
      const top = pixels[y0 * width + x0] * (1 - fx) + pixels[y0 * width + x1] * fx;
      const bottom = pixels[y1 * width + x0] * (1 - fx) + pixels[y1 * width + x1] * fx;
      const v = top * (1 - fy) + bottom * fy;
      for (let c = 0; c < 3; c++) out[c * size * size + y * size + x] = (v - MEAN[c]) / STD[c];
    }
  }
  return out;
}

let session: Promise<ort.InferenceSession> | undefined;
let loadedPath: string | undefined;

async function encode(task: EncodeTask): Promise<EncodeResult> {
  if (!session || loadedPath !== task.modelPath) {
    loadedPath = task.modelPath;
    session = ort.InferenceSession.create(task.modelPath, {
      intraOpNumThreads: task.threads,
      interOpNumThreads: 1,
    });
  }
  const s = await session;
  const input = new ort.Tensor('float32', samInput(task.pixels, task.width, task.height), [
    1,
    3,
    SAM_INPUT_SIZE,
    SAM_INPUT_SIZE,
  ]);
  const outputs = await s.run({ [s.inputNames[0]]: input });
  const output = outputs[s.outputNames[0]];
  return { embedding: output.data as Float32Array, dims: [...output.dims] };
}

parentPort?.on('message', (message: { id: number; request: EncodeTask }) => {
  const { id, request } = message;
  encode(request).then(
    (result) => {
      const reply: WorkerReply<EncodeResult> = { id, ok: true, result };
      parentPort?.postMessage(reply, [result.embedding.buffer as ArrayBuffer]);
    },
    (e: unknown) => {
      session = undefined;
      const reply: WorkerReply<EncodeResult> = {
        id,
        ok: false,
        error: { code: 'decode_error', message: `SAM encoder failed: ${(e as Error).message}` },
      };
      parentPort?.postMessage(reply);
    },
  );
});

const ready: WorkerReply<EncodeResult> = { ready: true };
parentPort?.postMessage(ready);
