// Worker thread for JPEG-LS frames (CharLS WASM); the body is wasm-frame-worker.ts.
import { serveWasmFrameDecoder } from './wasm-frame-worker.js';

serveWasmFrameDecoder('jpegls');
