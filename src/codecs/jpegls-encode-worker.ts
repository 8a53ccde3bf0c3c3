// Worker thread encoding JPEG-LS derived frames (CharLS WASM); the body is wasm-encode-worker.ts.
import { serveWasmFrameEncoder } from './wasm-encode-worker.js';

serveWasmFrameEncoder('jpegls');
