// The benchmarked slide, read once from disk with plain fs: the expected bytes every benchmark
// checks its answers against, and the tile index of its first image (where a viewer's tile reads
// really fall), parsed here with a few lines rather than our TIFF reader, which is not under test.

import { readFileSync } from 'node:fs';
import { fixture } from '../../test/support/fixtures.js';

export const SLIDE_FILE = fixture('wsi/svs/CMU-1-Small-Region.svs');

let cached: Buffer | undefined;

export function slideBytes(): Buffer {
  cached ??= readFileSync(SLIDE_FILE);
  return cached;
}

export function expectedBytes(offset: number, length: number): Uint8Array {
  return slideBytes().subarray(offset, offset + length);
}

/** The tile grid of the first IFD of a little-endian classic TIFF. */
export interface TileIndex {
  /** Offset and length of IFD 0's entries (what opening a slide reads first). */
  ifdOffset: number;
  ifdLength: number;
  tilesAcross: number;
  tilesDown: number;
  offsets: number[];
  byteCounts: number[];
}

const TAG = { width: 256, height: 257, tileWidth: 322, tileLength: 323, offsets: 324, byteCounts: 325 };

export function firstImageTiles(): TileIndex {
  const bytes = slideBytes();
  if (bytes.readUInt32LE(0) !== 0x002a4949)
    throw new Error(`${SLIDE_FILE}: not a little-endian classic TIFF`);
  const ifdOffset = bytes.readUInt32LE(4);
  const entries = bytes.readUInt16LE(ifdOffset);
  const values = new Map<number, number[]>();
  for (let i = 0; i < entries; i++) {
    const at = ifdOffset + 2 + 12 * i;
    const [tag, type, count] = [
      bytes.readUInt16LE(at),
      bytes.readUInt16LE(at + 2),
      bytes.readUInt32LE(at + 4),
    ];
    if (type !== 3 && type !== 4) continue; // SHORT and LONG are all the grid needs
    const size = type === 3 ? 2 : 4;
    const start = count * size <= 4 ? at + 8 : bytes.readUInt32LE(at + 8);
    const read = (k: number) =>
      size === 2 ? bytes.readUInt16LE(start + k * size) : bytes.readUInt32LE(start + k * size);
    values.set(
      tag,
      Array.from({ length: count }, (_, k) => read(k)),
    );
  }
  const one = (tag: number) => {
    const value = values.get(tag)?.[0];
    if (value === undefined) throw new Error(`${SLIDE_FILE}: IFD 0 has no tag ${tag}`);
    return value;
  };
  return {
    ifdOffset,
    ifdLength: 2 + 12 * entries + 4,
    tilesAcross: Math.ceil(one(TAG.width) / one(TAG.tileWidth)),
    tilesDown: Math.ceil(one(TAG.height) / one(TAG.tileLength)),
    offsets: values.get(TAG.offsets) ?? [],
    byteCounts: values.get(TAG.byteCounts) ?? [],
  };
}
