// The J2K marker parser against codestreams OpenJPH writes with known settings: progression, TLM,
// reversibility and tile-parts are read back; a stream that breaks the HTJ2K Lossless RPCL rules is
// labelled 1.2.840.10008.1.2.4.201 with the reasons; what is not a codestream is a typed error.

import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { parseJ2kCodestream, rpclViolations } from '../../src/codecs/j2k-markers.js';
import { describe as describeDerived } from '../../src/dicomweb/derived.js';
import { TransferSyntax } from '../../src/dicom/tags.js';

interface Encoder {
  getDecodedBuffer(info: object): Uint8Array;
  getEncodedBuffer(): Uint8Array;
  encode(): void;
  delete(): void;
  setProgressionOrder(n: number): void;
  setTLMMarker(on: boolean): void;
  setTilePartDivisionsAtResolutions(on: boolean): void;
  setQuality(reversible: boolean, step: number): void;
  setDecompositions(n: number): void;
}

async function encode(settings: { order: number; tlm: boolean; reversible: boolean }): Promise<Uint8Array> {
  const factory = createRequire(import.meta.url)('@cornerstonejs/codec-openjph/wasmjs') as (
    o: object,
  ) => Promise<{ HTJ2KEncoder: new () => Encoder }>;
  const mod = await factory({ print: () => undefined, printErr: () => undefined });
  const e = new mod.HTJ2KEncoder();
  const info = {
    width: 64,
    height: 32,
    bitsPerSample: 8,
    componentCount: 1,
    isSigned: false,
    isUsingColorTransform: false,
  };
  e.getDecodedBuffer(info).set(new Uint8Array(64 * 32).map((_, i) => (i * 37) & 0xff));
  e.setDecompositions(3);
  e.setQuality(settings.reversible, settings.reversible ? 0 : 0.01);
  e.setProgressionOrder(settings.order);
  e.setTLMMarker(settings.tlm);
  e.setTilePartDivisionsAtResolutions(settings.tlm);
  e.encode();
  const out = e.getEncodedBuffer().slice();
  e.delete();
  return out;
}

describe('J2K markers', () => {
  it('reads RPCL, TLM and one tile-part per resolution', async () => {
    const cs = parseJ2kCodestream(await encode({ order: 2, tlm: true, reversible: true }));
    expect([cs.width, cs.height, cs.bitDepth, cs.signed, cs.components]).toEqual([64, 32, 8, false, 1]);
    expect(cs.progression).toBe('RPCL');
    expect(cs.decompositions).toBe(3);
    expect(cs.tileParts).toHaveLength(4);
    expect(cs.tlm).toEqual(cs.tileParts.map((p) => p.length));
    expect(rpclViolations(cs)).toEqual([]);
  });

  it('labels a stream that breaks the RPCL rules .201, saying why', async () => {
    const bytes = await encode({ order: 0, tlm: false, reversible: true });
    const cs = parseJ2kCodestream(bytes);
    expect(cs.progression).toBe('LRCP');
    expect(cs.tlm).toBeUndefined();
    expect(rpclViolations(cs)).toEqual(['progression LRCP, not RPCL', 'no TLM marker']);
    expect(describeDerived('htj2k', bytes).transferSyntax).toBe(TransferSyntax.Htj2kLossless);
    const lossy = parseJ2kCodestream(await encode({ order: 2, tlm: true, reversible: false }));
    expect(lossy.reversible).toBe(false);
    expect(rpclViolations(lossy)).toEqual(['not reversible']);
  });

  it('rejects what is not a codestream, or is cut short, with a typed error', async () => {
    expect(() => parseJ2kCodestream(new Uint8Array([1, 2, 3, 4]))).toThrow(/no SOC marker/);
    const bytes = await encode({ order: 2, tlm: true, reversible: true });
    expect(() => parseJ2kCodestream(bytes.subarray(0, 100))).toThrow(
      expect.objectContaining({ code: 'decode_error' }),
    );
    expect(() => parseJ2kCodestream(bytes.subarray(0, bytes.length - 10))).toThrow(/runs past|EOC/);
  });
});
