// TIFF LZW (compression 5, TIFF 6.0 section 13): MSB-first variable-length codes of 9..12 bits,
// Clear = 256, EndOfInformation = 257, and the TIFF "early change" (the code width grows one
// code before the table fills, as libtiff does). The output is bounded by the caller's expected
// size and every table access is checked, so corrupt data fails with `DecodeError`.

import { DecodeError, UnsupportedFormat } from '../errors.js';

const CLEAR = 256;
const END = 257;
const FIRST_FREE = 258;
const MAX_BITS = 12;
const TABLE_SIZE = 1 << MAX_BITS;

/**
 * Decodes up to `expectedLength` bytes. Data past that is ignored (libtiff does the same); data
 * that ends or stops (EOI) before it is a `DecodeError`.
 */
export function decodeLzw(input: Uint8Array, expectedLength: number): Uint8Array {
  // Pre-TIFF-6 "old-style" LZW is LSB-first and starts with a Clear code written that way.
  if (input.length >= 2 && input[0] === 0 && (input[1] & 1) === 1) {
    throw new UnsupportedFormat('old-style (LSB-first, pre-TIFF 6.0) LZW data is not supported');
  }
  const out = new Uint8Array(expectedLength);
  const prefix = new Uint16Array(TABLE_SIZE);
  const suffix = new Uint8Array(TABLE_SIZE);
  const firstByte = new Uint8Array(TABLE_SIZE);
  const lengths = new Uint16Array(TABLE_SIZE);
  for (let i = 0; i < 256; i++) {
    suffix[i] = i;
    firstByte[i] = i;
    lengths[i] = 1;
  }

  let outPos = 0;
  let bitBuffer = 0;
  let bitCount = 0;
  let inPos = 0;
  let codeBits = 9;
  let nextCode = FIRST_FREE;
  let previous = -1;

  // Writes the string of `code`, truncated at the end of the output. Returns false when full.
  const emit = (code: number): boolean => {
    const length = lengths[code];
    let pos = outPos + length - 1;
    let c = code;
    while (pos >= outPos) {
      if (pos < expectedLength) out[pos] = suffix[c];
      c = prefix[c];
      pos--;
    }
    outPos += length;
    return outPos < expectedLength;
  };

  while (outPos < expectedLength) {
    while (bitCount < codeBits) {
      if (inPos >= input.length) {
        throw new DecodeError(`LZW data ended after ${outPos} of ${expectedLength} bytes`);
      }
      bitBuffer = ((bitBuffer << 8) | input[inPos++]) & 0xffffff;
      bitCount += 8;
    }
    const code = (bitBuffer >>> (bitCount - codeBits)) & ((1 << codeBits) - 1);
    bitCount -= codeBits;

    if (code === END) {
      throw new DecodeError(`LZW data ended (EOI) after ${outPos} of ${expectedLength} bytes`);
    }
    if (code === CLEAR) {
      codeBits = 9;
      nextCode = FIRST_FREE;
      previous = -1;
      continue;
    }
    if (previous === -1) {
      if (code > 255) throw new DecodeError(`LZW code ${code} follows a Clear code`);
      if (!emit(code)) break;
      previous = code;
      continue;
    }
    if (nextCode >= TABLE_SIZE) {
      throw new DecodeError('LZW string table overflow (missing Clear code)');
    }
    let first: number;
    if (code < nextCode) {
      first = firstByte[code];
    } else if (code === nextCode) {
      first = firstByte[previous];
    } else {
      throw new DecodeError(`LZW code ${code} is not yet defined (next free code ${nextCode})`);
    }
    prefix[nextCode] = previous;
    suffix[nextCode] = first;
    firstByte[nextCode] = firstByte[previous];
    lengths[nextCode] = lengths[previous] + 1;
    nextCode++;
    if (nextCode >= (1 << codeBits) - 1 && codeBits < MAX_BITS) codeBits++;
    if (!emit(code)) break;
    previous = code;
  }
  return out;
}
