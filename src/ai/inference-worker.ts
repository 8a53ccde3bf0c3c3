// Worker thread body: owns one model's ONNX Runtime session (inference-session.ts), so inference
// never blocks the event loop. model-worker.ts is the other side.

import { parentPort } from 'node:worker_threads';
import { answer } from './inference-session.js';
import type { WorkerRequest } from './worker-protocol.js';

if (!parentPort) throw new Error('inference-worker.ts must run in a worker thread');
const port = parentPort;

port.on('message', (message: WorkerRequest) => {
  void answer(message).then((reply) => {
    const transfer = 'output' in reply && reply.output ? [reply.output.data.buffer as ArrayBuffer] : [];
    port.postMessage(reply, transfer);
  });
});
port.postMessage({ ready: true });
