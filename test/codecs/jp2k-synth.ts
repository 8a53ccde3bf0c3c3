// Encodes small JPEG 2000 codestreams for tests with the encoder that ships in
// @cornerstonejs/codec-openjpeg (lossless 5/3 wavelet; with 3 components it applies the
// reversible colour transform, which the decoder undoes, so the component values round-trip).
import { createRequire } from 'node:module';

interface Encoder {
  getDecodedBuffer(info: {
    width: number;
    height: number;
    bitsPerSample: number;
    componentCount: number;
    isSigned: boolean;
  }): Uint8Array;
  getEncodedBuffer(): Uint8Array;
  setQuality(lossless: boolean, layers: number): void;
  setDecompositions(count: number): void;
  setCompressionRatio(layer: number, ratio: number): void;
  encode(): void;
  delete(): void;
}
type Factory = (options: object) => Promise<{ J2KEncoder: new () => Encoder }>;

const factory = createRequire(import.meta.url)('@cornerstonejs/codec-openjpeg/wasmjs') as Factory;
let module: ReturnType<Factory> | undefined;

/** A J2K codestream (lossless unless `lossyRatio`) of interleaved 8-bit samples (1 or 3 components). */
export async function encodeJp2k(
  samples: Uint8Array,
  width: number,
  height: number,
  components: 1 | 3,
  /** Irreversible (9/7 wavelet; ICT with 3 components) at this compression ratio instead of lossless. */
  lossyRatio?: number,
): Promise<Uint8Array> {
  module ??= factory({ print: () => undefined, printErr: () => undefined });
  const encoder = new (await module).J2KEncoder();
  try {
    encoder
      .getDecodedBuffer({ width, height, bitsPerSample: 8, componentCount: components, isSigned: false })
      .set(samples);
    // OpenJPEG refuses more wavelet levels than the smaller side allows.
    encoder.setDecompositions(Math.min(5, Math.floor(Math.log2(Math.min(width, height)))));
    encoder.setQuality(lossyRatio === undefined, 1);
    encoder.setCompressionRatio(0, lossyRatio ?? 0);
    encoder.encode();
    return encoder.getEncodedBuffer().slice();
  } finally {
    encoder.delete();
  }
}
