// Child process body (node:child_process fork, IPC with 'advanced' serialization): owns one
// model's ONNX Runtime session (inference-session.ts). Used when a model has a batch time limit:
// a batch running past it is stopped by killing this process, which a worker thread inside
// onnxruntime-node's `run` cannot be without aborting the server. model-worker.ts is the other side.

import { answer } from './inference-session.js';
import type { WorkerRequest } from './worker-protocol.js';

if (!process.send) throw new Error('inference-process.ts must run as a forked child process');
const send = process.send.bind(process);

process.on('message', (message: WorkerRequest) => {
  void answer(message).then((reply) => send(reply));
});
// The parent went away: nothing left to answer.
process.on('disconnect', () => process.exit(0));
send({ ready: true });
