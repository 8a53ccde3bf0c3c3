// Frame encoders for generated DICOM WSI test instances: JPEG with sharp, JPEG 2000 with
// OpenJPEG's encoder (jp2k-synth.ts), JPEG-LS with CharLS's and HTJ2K with OpenJPH's — the
// same WASM packages the server decodes with. CharLS and OpenJPH each run in their own worker
// thread: two embind modules in one thread collide ("Cannot register multiple overloads").
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import sharp from 'sharp';

export { encodeJp2k } from '../codecs/jp2k-synth.js';

const require = createRequire(import.meta.url);

/** Worker code: loads one encoder module and answers {id, samples, info} with the encoded bytes. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ready = require(workerData.module)({ print() {}, printErr() {} });
parentPort.on('message', async ({ id, samples, info }) => {
  try {
    const mod = await ready;
    const encoder = new mod[workerData.encoder]();
    try {
      encoder.getDecodedBuffer(info).set(samples);
      encoder.encode();
      parentPort.postMessage({ id, bytes: encoder.getEncodedBuffer().slice() });
    } finally {
      encoder.delete();
    }
  } catch (e) {
    parentPort.postMessage({ id, error: String(e && e.message || e) });
  }
});
`;

interface EncoderThread {
  worker: Worker;
  pending: Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>;
  next: number;
}
const threads = new Map<string, EncoderThread>();

function encoderThread(module: string, encoder: string): EncoderThread {
  let thread = threads.get(module);
  if (!thread) {
    const worker = new Worker(WORKER, {
      eval: true,
      workerData: { module: require.resolve(module), encoder },
    });
    worker.unref();
    const t: EncoderThread = { worker, pending: new Map(), next: 1 };
    worker.on('message', (m: { id: number; bytes?: Uint8Array; error?: string }) => {
      const p = t.pending.get(m.id);
      t.pending.delete(m.id);
      if (t.pending.size === 0) worker.unref();
      if (m.bytes) p?.resolve(new Uint8Array(m.bytes));
      else p?.reject(new Error(m.error));
    });
    threads.set(module, (thread = t));
  }
  return thread;
}

function encodeIn(module: string, encoder: string, samples: Uint8Array, info: object): Promise<Uint8Array> {
  const thread = encoderThread(module, encoder);
  const id = thread.next++;
  thread.worker.ref();
  return new Promise((resolve, reject) => {
    thread.pending.set(id, { resolve, reject });
    thread.worker.postMessage({ id, samples, info });
  });
}

/** A lossless JPEG-LS stream of interleaved 8-bit samples. */
export function encodeJpegLs(samples: Uint8Array, width: number, height: number, components: 1 | 3) {
  return encodeIn('@cornerstonejs/codec-charls/wasmjs', 'JpegLSEncoder', samples, {
    width,
    height,
    bitsPerSample: 8,
    componentCount: components,
  });
}

/** A lossless HTJ2K codestream (reversible colour transform for 3 components). */
export function encodeHtj2k(samples: Uint8Array, width: number, height: number, components: 1 | 3) {
  return encodeIn('@cornerstonejs/codec-openjph/wasmjs', 'HTJ2KEncoder', samples, {
    width,
    height,
    bitsPerSample: 8,
    componentCount: components,
    isSigned: false,
    isUsingColorTransform: components === 3,
  });
}

/** A baseline JPEG (YCbCr, 4:4:4) of interleaved RGB samples. */
export async function encodeJpeg(samples: Uint8Array, width: number, height: number, quality = 95) {
  const out = await sharp(Buffer.from(samples), { raw: { width, height, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:4:4' })
    .toBuffer();
  return new Uint8Array(out);
}

/** A test pattern: tile (tx, ty) of a w x h image, smooth so lossy codecs stay close. */
export function patternTile(tx: number, ty: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      out[i] = (tx * 60 + x * 2) & 0xff;
      out[i + 1] = (ty * 80 + y * 2) & 0xff;
      out[i + 2] = (tx * 30 + ty * 50 + 40) & 0xff;
    }
  }
  return out;
}
