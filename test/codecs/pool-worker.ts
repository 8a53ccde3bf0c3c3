// A worker script for worker-pool tests: echoes, waits, spins forever or crashes on request.
import { parentPort } from 'node:worker_threads';

type Request =
  | { op: 'echo'; value: number }
  | { op: 'wait'; ms: number }
  | { op: 'spin' }
  | { op: 'crash' }
  | { op: 'fail' };

parentPort?.on('message', ({ id, request }: { id: number; request: Request }) => {
  switch (request.op) {
    case 'echo':
      parentPort?.postMessage({ id, ok: true, result: request.value * 2 });
      break;
    case 'wait':
      setTimeout(() => parentPort?.postMessage({ id, ok: true, result: -1 }), request.ms);
      break;
    case 'spin':
      for (;;); // a decoder stuck in a loop
    case 'crash':
      throw new Error('worker blew up');
    case 'fail':
      parentPort?.postMessage({ id, ok: false, error: { code: 'unsupported_format', message: 'nope' } });
      break;
  }
});
parentPort?.postMessage({ ready: true });
