// The messages between a model's worker thread (inference-worker.ts) and its host
// (model-worker.ts): load a model, run one batch. Data moves as transferred Float32Arrays.

/** A graph input or output as onnxruntime reports it (`type` e.g. `float32`; dims numeric or symbolic). */
export interface TensorInfo {
  name: string;
  type: string;
  shape: (number | string)[];
}

export type WorkerRequest =
  | { kind: 'load'; id: number; path: string; intraOpThreads: number }
  | { kind: 'run'; id: number; input: string; output: string; data: Float32Array; dims: number[] };

export type WorkerReply =
  | { ready: true }
  | {
      id: number;
      ok: true;
      loaded?: { inputs: TensorInfo[]; outputs: TensorInfo[] };
      output?: { data: Float32Array; dims: number[] };
      /** `session.run` calls made by this worker so far. */
      runs?: number;
    }
  | { id: number; ok: false; message: string };
