// Decode time per codec, for /metrics: a count, a sum and a fixed-bucket histogram per codec
// name (jpeg, jpeg2000, lzw, ...), plus failures. Cheap enough to record on every tile.

import { Compression } from './types.js';

/** Upper bounds of the histogram buckets, in milliseconds. */
export const DECODE_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;

export interface CodecTimes {
  count: number;
  errors: number;
  sumMs: number;
  /** Cumulative counts per bucket of DECODE_BUCKETS_MS. */
  cumulative: number[];
}

const NAMES: Record<number, string> = {
  [Compression.None]: 'none',
  [Compression.LZW]: 'lzw',
  [Compression.JPEG]: 'jpeg',
  [Compression.Deflate]: 'deflate',
  [Compression.AdobeDeflate]: 'deflate',
  [Compression.PackBits]: 'packbits',
  [Compression.AperioJP2KYCbCr]: 'jpeg2000',
  [Compression.AperioJP2KRGB]: 'jpeg2000',
  [Compression.JPEG2000]: 'jpeg2000',
  [Compression.ZSTD]: 'zstd',
  [Compression.WebP]: 'webp',
  [Compression.JPEGLS]: 'jpegls',
  [Compression.HTJ2K]: 'htj2k',
};

export function codecName(compression: number): string {
  return NAMES[compression] ?? 'other';
}

export class DecodeStats {
  private readonly byCodec = new Map<string, CodecTimes>();

  record(compression: number, ms: number, failed: boolean): void {
    const name = codecName(compression);
    let times = this.byCodec.get(name);
    if (!times) {
      times = { count: 0, errors: 0, sumMs: 0, cumulative: DECODE_BUCKETS_MS.map(() => 0) };
      this.byCodec.set(name, times);
    }
    times.count++;
    times.sumMs += ms;
    if (failed) times.errors++;
    DECODE_BUCKETS_MS.forEach((bound, i) => {
      if (ms <= bound) times.cumulative[i]++;
    });
  }

  snapshot(): Record<string, CodecTimes> {
    return Object.fromEntries(
      [...this.byCodec].map(([name, t]) => [name, { ...t, cumulative: [...t.cumulative] }]),
    );
  }
}
