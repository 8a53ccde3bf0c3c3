// Zstandard (TIFF compression 50000) through `fzstd`. The input is pushed in small slices to the
// streaming decoder so a hostile frame (tiny input, huge declared or RLE-expanded output) can
// never produce more than a bounded amount past what the tile needs.

import { Decompress } from 'fzstd';
import { DecodeError } from '../errors.js';

/** Input bytes per push: at most ~64 blocks of 128 KiB can come out of one slice. */
const SLICE = 256;

/** Decodes at least `expectedLength` bytes (more are dropped), or throws `DecodeError`. */
export function decodeZstd(input: Uint8Array, expectedLength: number): Uint8Array {
  const out = new Uint8Array(expectedLength);
  let filled = 0;
  const decoder = new Decompress((chunk) => {
    const take = Math.min(chunk.length, expectedLength - filled);
    if (take > 0) out.set(take === chunk.length ? chunk : chunk.subarray(0, take), filled);
    filled += take;
  });
  try {
    for (let pos = 0; pos < input.length && filled < expectedLength; pos += SLICE) {
      const end = Math.min(pos + SLICE, input.length);
      decoder.push(input.subarray(pos, end), end === input.length);
    }
  } catch (e) {
    if (filled < expectedLength) {
      throw new DecodeError(`ZSTD data is corrupt: ${(e as Error).message}`, { cause: e });
    }
  }
  if (filled < expectedLength) {
    throw new DecodeError(`ZSTD data ended after ${filled} of ${expectedLength} bytes`);
  }
  return out;
}
