// PackBits (TIFF compression 32773, TIFF 6.0 section 9): a byte-oriented run-length code. Each
// header byte n is followed by n+1 literal bytes (0..127) or one byte repeated 1-n times
// (-127..-1); -128 is a no-op. Output is bounded by the caller's expected size.

import { DecodeError } from '../errors.js';

/** Decodes exactly `expectedLength` bytes, or throws `DecodeError` if the data runs out first. */
export function decodePackBits(input: Uint8Array, expectedLength: number): Uint8Array {
  const out = new Uint8Array(expectedLength);
  let inPos = 0;
  let outPos = 0;
  while (outPos < expectedLength && inPos < input.length) {
    const header = input[inPos++];
    if (header < 128) {
      const count = Math.min(header + 1, expectedLength - outPos);
      if (inPos + count > input.length) break;
      out.set(input.subarray(inPos, inPos + count), outPos);
      inPos += header + 1;
      outPos += count;
    } else if (header > 128) {
      if (inPos >= input.length) break;
      const count = Math.min(257 - header, expectedLength - outPos);
      out.fill(input[inPos++], outPos, outPos + count);
      outPos += count;
    }
  }
  if (outPos < expectedLength) {
    throw new DecodeError(`PackBits data ended after ${outPos} of ${expectedLength} bytes`);
  }
  return out;
}
