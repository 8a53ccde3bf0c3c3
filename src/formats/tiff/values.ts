// Decodes TIFF field values from raw bytes in either byte order: the 8-, 16-, 32- and 64-bit
// integers of directories, and the numeric arrays of every field type (BYTE .. IFD8, rationals,
// floats). 64-bit values beyond 2^53 come back as unsafe numbers, which callers reject with
// `Number.isSafeInteger` before using them as offsets or counts.

import { FieldType, TYPE_SIZES } from './constants.js';

export class ByteOrder {
  constructor(readonly littleEndian: boolean) {}

  private view(bytes: Uint8Array): DataView {
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u16(bytes: Uint8Array, pos: number): number {
    return this.view(bytes).getUint16(pos, this.littleEndian);
  }

  u32(bytes: Uint8Array, pos: number): number {
    return this.view(bytes).getUint32(pos, this.littleEndian);
  }

  /** Unsigned 64-bit value as a number (inexact, and not a safe integer, above 2^53). */
  u64(bytes: Uint8Array, pos: number): number {
    const view = this.view(bytes);
    const low = view.getUint32(pos + (this.littleEndian ? 0 : 4), this.littleEndian);
    const high = view.getUint32(pos + (this.littleEndian ? 4 : 0), this.littleEndian);
    return high * 2 ** 32 + low;
  }

  /** An offset-sized value: 4 bytes in classic TIFF, 8 in BigTIFF. */
  offset(bytes: Uint8Array, pos: number, bigTiff: boolean): number {
    return bigTiff ? this.u64(bytes, pos) : this.u32(bytes, pos);
  }

  /**
   * The `count` values of a field of `type` stored in `bytes`. Rationals become their quotient
   * (NaN for a zero denominator); 64-bit integers become numbers (see `u64`).
   */
  numbers(type: number, bytes: Uint8Array, count: number): number[] {
    const view = this.view(bytes);
    const le = this.littleEndian;
    const size = TYPE_SIZES[type] ?? 1;
    const out = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      const p = i * size;
      switch (type) {
        case FieldType.SHORT:
          out[i] = view.getUint16(p, le);
          break;
        case FieldType.LONG:
        case FieldType.IFD:
          out[i] = view.getUint32(p, le);
          break;
        case FieldType.RATIONAL:
          out[i] = quotient(view.getUint32(p, le), view.getUint32(p + 4, le));
          break;
        case FieldType.SBYTE:
          out[i] = view.getInt8(p);
          break;
        case FieldType.SSHORT:
          out[i] = view.getInt16(p, le);
          break;
        case FieldType.SLONG:
          out[i] = view.getInt32(p, le);
          break;
        case FieldType.SRATIONAL:
          out[i] = quotient(view.getInt32(p, le), view.getInt32(p + 4, le));
          break;
        case FieldType.FLOAT:
          out[i] = view.getFloat32(p, le);
          break;
        case FieldType.DOUBLE:
          out[i] = view.getFloat64(p, le);
          break;
        case FieldType.LONG8:
        case FieldType.IFD8:
          out[i] = this.u64(bytes, p);
          break;
        case FieldType.SLONG8:
          out[i] = Number(view.getBigInt64(p, le));
          break;
        default:
          // BYTE, ASCII, UNDEFINED: one unsigned byte each.
          out[i] = view.getUint8(p);
      }
    }
    return out;
  }
}

function quotient(numerator: number, denominator: number): number {
  return denominator === 0 ? NaN : numerator / denominator;
}

/** An ASCII/UNDEFINED value as text: up to the first NUL, UTF-8 with replacement characters. */
export function decodeText(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return new TextDecoder('utf-8').decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
}
