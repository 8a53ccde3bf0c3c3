// Worker thread for HTJ2K frames (OpenJPH WASM); the body is wasm-frame-worker.ts.
import { serveWasmFrameDecoder } from './wasm-frame-worker.js';

serveWasmFrameDecoder('htj2k');
