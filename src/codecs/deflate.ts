// Deflate (TIFF compression 8 and the older 32946): zlib streams inflated by node:zlib on the
// libuv thread pool. Inflation stops as soon as the tile's bytes have arrived, so a few KiB of
// hostile input cannot expand into gigabytes, and data past the tile (or a stream cut short
// after it) is ignored like libtiff does; a stream that ends early comes back short and the
// length check in raster.ts reports it.

import zlib from 'node:zlib';
import { DecodeError } from '../errors.js';

/** Inflates up to `needed` bytes (fewer if the stream ends first). */
export function decodeDeflate(input: Uint8Array, needed: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const out = new Uint8Array(needed);
    let filled = 0;
    let settled = false;
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      inflater.destroy();
      if (error && filled < needed)
        reject(new DecodeError(`Deflate data is corrupt: ${error.message}`, { cause: error }));
      else resolve(filled === needed ? out : out.subarray(0, filled));
    };
    // Sync flush: a truncated stream ends quietly with what it had instead of failing.
    const inflater = zlib.createInflate({
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
      chunkSize: Math.max(1024, Math.min(needed, 256 * 1024)),
    });
    inflater.on('data', (chunk: Buffer) => {
      const take = Math.min(chunk.length, needed - filled);
      out.set(take === chunk.length ? chunk : chunk.subarray(0, take), filled);
      filled += take;
      if (filled >= needed) finish();
    });
    inflater.on('end', () => finish());
    inflater.on('error', (error) => finish(error));
    inflater.end(input);
  });
}
