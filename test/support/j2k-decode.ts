// Test-side reference decoders of derived frames, loaded straight from the WASM builds (outside
// MedStream's worker pools): OpenJPH for HTJ2K (whole, or at a reduced resolution level, of a
// whole codestream or of a prefix of one) and CharLS for JPEG-LS. Samples come back as numbers.
import { createRequire } from 'node:module';

interface Info {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}
interface Decoder {
  getEncodedBuffer(n: number): Uint8Array;
  getDecodedBuffer(): Uint8Array;
  decode(): void;
  decodeSubResolution?(level: number): void;
  calculateSizeAtDecompositionLevel?(level: number): { width: number; height: number };
  getFrameInfo(): Info;
  delete(): void;
}
type Module = Record<string, new () => Decoder>;
const require = createRequire(import.meta.url);
let openjph: Promise<Module> | undefined;
let charls: Promise<Module> | undefined;
const load = (name: string) =>
  (require(name) as (o: object) => Promise<Module>)({ print: () => undefined, printErr: () => undefined });

export interface Decoded {
  width: number;
  height: number;
  samples: number[];
}

function samplesOf(d: Decoder, width: number, height: number, bits: number, signed: boolean): number[] {
  const raw = d.getDecodedBuffer();
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: number[] = [];
  for (let i = 0; i < width * height; i++) {
    if (bits > 8) out.push(signed ? view.getInt16(2 * i, true) : view.getUint16(2 * i, true));
    else out.push(signed ? view.getInt8(i) : view.getUint8(i));
  }
  return out;
}

/** Decodes an HTJ2K codestream (or a prefix of one) at `level` (0 = full resolution). */
export async function decodeHtj2k(bytes: Uint8Array, level = 0): Promise<Decoded> {
  const mod = await (openjph ??= load('@cornerstonejs/codec-openjph/wasmjs'));
  const d = new mod.HTJ2KDecoder();
  try {
    d.getEncodedBuffer(bytes.length).set(bytes);
    d.decodeSubResolution!(level);
    const info = d.getFrameInfo();
    const size = d.calculateSizeAtDecompositionLevel!(level);
    return { ...size, samples: samplesOf(d, size.width, size.height, info.bitsPerSample, !!info.isSigned) };
  } finally {
    d.delete();
  }
}

/** Decodes a JPEG-LS codestream; `signed` reinterprets the 16-bit pattern as two's complement. */
export async function decodeJls(bytes: Uint8Array, signed = false): Promise<Decoded> {
  const mod = await (charls ??= load('@cornerstonejs/codec-charls/wasmjs'));
  const d = new mod.JpegLSDecoder();
  try {
    d.getEncodedBuffer(bytes.length).set(bytes);
    d.decode();
    const info = d.getFrameInfo();
    return {
      width: info.width,
      height: info.height,
      samples: samplesOf(d, info.width, info.height, info.bitsPerSample, signed),
    };
  } finally {
    d.delete();
  }
}
