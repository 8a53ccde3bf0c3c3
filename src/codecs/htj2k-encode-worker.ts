// Worker thread encoding HTJ2K derived frames (OpenJPH WASM); the body is wasm-encode-worker.ts.
import { serveWasmFrameEncoder } from './wasm-encode-worker.js';

serveWasmFrameEncoder('htj2k');
