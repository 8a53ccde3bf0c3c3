// One model's ONNX Runtime session and the answers to the worker protocol (worker-protocol.ts):
// `load` -> the graph's input/output names and metadata; `run` -> one `session.run` on a whole
// batch, with the count of runs so far. Shared by the worker-thread body (inference-worker.ts)
// and the child-process body (inference-process.ts).

import * as ort from 'onnxruntime-node';
import type { TensorInfo, WorkerReply, WorkerRequest } from './worker-protocol.js';

let session: ort.InferenceSession | undefined;
let runs = 0;

function describe(values: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return values.map((v) =>
    v.isTensor
      ? { name: v.name, type: v.type, shape: [...v.shape] }
      : { name: v.name, type: 'non-tensor', shape: [] },
  );
}

export async function handle(message: WorkerRequest): Promise<WorkerReply> {
  if (message.kind === 'load') {
    session = await ort.InferenceSession.create(message.path, {
      intraOpNumThreads: message.intraOpThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // Idle intra-op threads sleep instead of spinning: they share the cores with the HTTP
      // thread and image decoding (spinning measured 2-5x slower batch-1 runs on 2 busy cores).
      extra: { session: { intra_op: { allow_spinning: '0' } } },
    });
    return {
      id: message.id,
      ok: true,
      loaded: { inputs: describe(session.inputMetadata), outputs: describe(session.outputMetadata) },
    };
  }
  if (!session) throw new Error('no model loaded');
  const feeds = { [message.input]: new ort.Tensor('float32', message.data, message.dims) };
  runs++;
  const result = await session.run(feeds, [message.output]);
  const tensor = result[message.output];
  const data = tensor.data;
  if (!(data instanceof Float32Array))
    throw new Error(`output ${message.output} is ${tensor.type}, not float32`);
  // A copy the transfer list can move (the session's own buffer may be shared with ORT).
  const copy = new Float32Array(data);
  return { id: message.id, ok: true, output: { data: copy, dims: [...tensor.dims] }, runs };
}

/** Answers one request: the reply, or `{ok: false, message}` when it failed. */
export async function answer(message: WorkerRequest): Promise<WorkerReply> {
  try {
    return await handle(message);
  } catch (e) {
    return { id: message.id, ok: false, message: e instanceof Error ? e.message : String(e) };
  }
}
