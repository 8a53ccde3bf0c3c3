// Reads the SIZ marker segment of a JPEG 2000 codestream (ITU-T T.800 A.5.1), bare or inside a
// JP2 file's `jp2c` box, without decoding: image size, offsets and per-component precision and
// subsampling. The codec checks these before handing a tile to a worker, so a hostile header
// cannot make the decoder allocate gigabytes and unsupported layouts fail with a clear message.

import { DecodeError } from '../errors.js';

export interface Jp2kComponent {
  /** Bits per sample. */
  precision: number;
  signed: boolean;
  /** Horizontal and vertical subsampling (XRsiz, YRsiz). */
  dx: number;
  dy: number;
}

export interface Jp2kHeader {
  /** Image size (Xsiz - XOsiz, Ysiz - YOsiz). */
  width: number;
  height: number;
  xOffset: number;
  yOffset: number;
  components: Jp2kComponent[];
}

const JP2_SIGNATURE = [0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20];

export function readJp2kHeader(bytes: Uint8Array): Jp2kHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const start = JP2_SIGNATURE.every((b, i) => bytes[i] === b) ? findCodestream(bytes, view) : 0;
  // SOC (FF4F) then SIZ (FF51) must open the main header.
  if (start + 42 > bytes.length || view.getUint16(start) !== 0xff4f || view.getUint16(start + 2) !== 0xff51) {
    throw new DecodeError('JPEG 2000 data does not start with SOC and SIZ markers');
  }
  const siz = start + 4;
  const length = view.getUint16(siz);
  const count = view.getUint16(siz + 36);
  if (count < 1 || count > 16384 || length !== 38 + 3 * count || siz + length > bytes.length) {
    throw new DecodeError('JPEG 2000 SIZ marker segment is malformed');
  }
  const xsiz = view.getUint32(siz + 4);
  const ysiz = view.getUint32(siz + 8);
  const xOffset = view.getUint32(siz + 12);
  const yOffset = view.getUint32(siz + 16);
  if (xsiz <= xOffset || ysiz <= yOffset) throw new DecodeError('JPEG 2000 image size is empty');
  const components: Jp2kComponent[] = [];
  for (let c = 0; c < count; c++) {
    const at = siz + 38 + 3 * c;
    const ssiz = bytes[at];
    const dx = bytes[at + 1];
    const dy = bytes[at + 2];
    if (dx === 0 || dy === 0) throw new DecodeError('JPEG 2000 component subsampling of 0');
    components.push({ precision: (ssiz & 0x7f) + 1, signed: (ssiz & 0x80) !== 0, dx, dy });
  }
  return { width: xsiz - xOffset, height: ysiz - yOffset, xOffset, yOffset, components };
}

/** Offset of the contiguous-codestream (`jp2c`) box payload in a JP2 file. */
function findCodestream(bytes: Uint8Array, view: DataView): number {
  let pos = 0;
  while (pos + 8 <= bytes.length) {
    let length = view.getUint32(pos);
    const type = view.getUint32(pos + 4);
    let header = 8;
    if (length === 1) {
      if (pos + 16 > bytes.length) break;
      length = Number(view.getBigUint64(pos + 8));
      header = 16;
    } else if (length === 0) {
      length = bytes.length - pos;
    }
    if (type === 0x6a703263) return pos + header; // 'jp2c'
    if (length < header) break;
    pos += length;
  }
  throw new DecodeError('JP2 file has no codestream (jp2c) box');
}
