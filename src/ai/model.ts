// One served ONNX model: its declaration, its worker thread (the ONNX Runtime session) and its
// batcher. `infer` reads and preprocesses one image, queues it for the next batch and returns that image's
// slice of the batch output.

import type { Batcher } from './batcher.js';
import type { ModelDeclaration } from './declaration.js';
import type { ModelWorker } from './model-worker.js';
import { preprocess, type FloatPixels, type Pixels } from './preprocess.js';
import type { TensorInfo } from './worker-protocol.js';

export interface ModelOutput {
  data: Float32Array;
  /** One image's output dims (the batch dimension removed). */
  dims: number[];
}

export class OnnxModel {
  readonly batcher: Batcher<ModelOutput>;

  constructor(
    readonly name: string,
    readonly declaration: ModelDeclaration,
    readonly graph: { inputs: TensorInfo[]; outputs: TensorInfo[] },
    readonly worker: ModelWorker,
    makeBatcher: (arriving: () => number) => Batcher<ModelOutput>,
  ) {
    this.batcher = makeBatcher(() => this.arriving);
  }

  /** Requests being read and preprocessed for this model (the batcher waits for them). */
  arriving = 0;

  /** Reads the image (`load`), preprocesses it and queues it for the next batch. */
  async infer(load: () => Promise<Pixels | FloatPixels>, signal?: AbortSignal): Promise<ModelOutput> {
    let input: Float32Array;
    // Counted against the queue bound before the image is read (bounded memory).
    this.batcher.admit(this.arriving);
    this.arriving++;
    try {
      input = await preprocess(await load(), this.declaration);
    } catch (e) {
      this.arriving--;
      this.batcher.poke();
      throw e;
    }
    this.arriving--;
    const output = this.batcher.submit(input, signal);
    this.batcher.poke();
    return output;
  }

  /** The input dims of a batch of `n` images, in the declared layout. */
  static inputDims(decl: ModelDeclaration, n: number): number[] {
    const { width, height, channels, layout } = decl.input;
    return layout === 'NCHW' ? [n, channels, height, width] : [n, height, width, channels];
  }
}
