// Worker thread for DICOM JPEG frames (libjpeg-turbo WASM, lossless by jpeg-lossless-decoder-js);
// the body is wasm-frame-worker.ts.
import { serveWasmFrameDecoder } from './wasm-frame-worker.js';

serveWasmFrameDecoder('jpeg');
