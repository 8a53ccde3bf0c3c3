// One served ONNX model: its declaration, its worker thread (the ONNX Runtime session) and its
// batcher. `infer` preprocesses one image, queues it for the next batch and returns that image's
// slice of the batch output.

import type { Batcher } from './batcher.js';
import type { ModelDeclaration } from './declaration.js';
import type { ModelWorker } from './model-worker.js';
import { preprocess, type Pixels } from './preprocess.js';
import type { TensorInfo } from './worker-protocol.js';

export interface ModelOutput {
  data: Float32Array;
  /** One image's output dims (the batch dimension removed). */
  dims: number[];
}

export class OnnxModel {
  constructor(
    readonly name: string,
    readonly declaration: ModelDeclaration,
    readonly graph: { inputs: TensorInfo[]; outputs: TensorInfo[] },
    readonly worker: ModelWorker,
    readonly batcher: Batcher<ModelOutput>,
  ) {}

  async infer(image: Pixels, signal?: AbortSignal): Promise<ModelOutput> {
    const input = await preprocess(image, this.declaration);
    return this.batcher.submit(input, signal);
  }

  /** The input dims of a batch of `n` images, in the declared layout. */
  static inputDims(decl: ModelDeclaration, n: number): number[] {
    const { width, height, channels, layout } = decl.input;
    return layout === 'NCHW' ? [n, channels, height, width] : [n, height, width, channels];
  }
}
