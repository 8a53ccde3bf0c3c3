// Slices of NIfTI volumes as DICOM native frames (explicit VR little endian, columns fastest, as
// the catalog declares them): a `.nii` slice is one range read of the stored object; a `.nii.gz`
// cannot be ranged, so it is decompressed once, streaming, into a bounded on-disk cache
// (`<data-dir>/nifti-cache`, least recently used files evicted past --nifti-cache bytes) and its
// slices are read from there. Concurrent first requests share one decompression. Integer sample
// types (uint8, int8, int16, uint16, int32, uint32) as stored, big-endian ones swapped; float32 and
// float64 as int16 by the catalog's per-volume rescale (nifti-float.ts). The same
// cache holds deflated DICOM objects inflated (`deflatedDicom`: meta group + inflated data set), so
// their frames and bulk data are range reads too, after one full read of the stored object.

import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip, createInflateRaw } from 'node:zlib';
import type { NiftiSliceLocation } from '../catalog/record.js';
import { CorruptFile, NotImplemented } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { FLOAT_BYTES, quantizeFloatSlice } from './nifti-float.js';

/** What a cached file is made from: a gzip object, or a DICOM object deflated from `dataOffset`. */
type Compression = { gzip: true } | { deflatedFrom: number };

const INTEGER_BYTES: Record<number, number> = { 2: 1, 256: 1, 4: 2, 512: 2, 8: 4, 768: 4 };
const STREAM_CHUNK = 4 * 1024 * 1024;

export interface NiftiSliceCacheOptions {
  dir: string;
  maxBytes: number;
}

export class NiftiSliceReader {
  private readonly inflating = new Map<string, Promise<string>>();
  /** Cached files, least recently used first, with their sizes. */
  private readonly files = new Map<string, number>();
  private bytes = 0;
  /** Files of an earlier process are not accounted for: the cache starts empty. */
  private cleared: Promise<void> | undefined;

  constructor(private readonly cache: NiftiSliceCacheOptions) {}

  /** The native little-endian bytes of one slice. */
  async slice(
    source: ByteSource,
    version: string,
    location: NiftiSliceLocation,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    const { datatype, voxOffset, littleEndian, gzip, dims, slice, float } = location.nifti;
    const size = INTEGER_BYTES[datatype] ?? (float ? FLOAT_BYTES[datatype] : undefined);
    if (size === undefined)
      throw new NotImplemented(
        `NIfTI datatype ${datatype} is not served as frames${FLOAT_BYTES[datatype] ? ' (indexed before float volumes were: re-index it)' : ''}`,
      );
    const sliceBytes = dims[0] * dims[1] * size;
    const offset = voxOffset + slice * sliceBytes;
    let bytes: Uint8Array;
    if (!gzip) {
      if (offset + sliceBytes > source.size)
        throw new CorruptFile(`${source.key}: slice ${slice + 1} lies past the end of the volume`);
      bytes = await source.read(offset, sliceBytes, { purpose: 'data', signal });
    } else {
      const file = await this.inflated(source, version, { gzip: true }, signal);
      const handle = await fs.open(file, 'r');
      try {
        const out = Buffer.alloc(sliceBytes);
        const { bytesRead } = await handle.read(out, 0, sliceBytes, offset);
        if (bytesRead !== sliceBytes)
          throw new CorruptFile(`${source.key}: slice ${slice + 1} lies past the end of the volume`);
        bytes = out;
      } finally {
        await handle.close();
      }
    }
    if (float) return quantizeFloatSlice(bytes, datatype, littleEndian, float, float.min);
    if (littleEndian || size === 1) return bytes;
    const swapped = new Uint8Array(bytes.length);
    for (let i = 0; i < bytes.length; i += size)
      for (let b = 0; b < size; b++) swapped[i + b] = bytes[i + size - 1 - b];
    return swapped;
  }

  /**
   * A deflated DICOM object as the file it would be inflated (offsets as the catalog recorded
   * them): inflated into the cache on the first read, then read by range from there.
   */
  async deflatedDicom(
    source: ByteSource,
    version: string,
    dataOffset: number,
    signal?: AbortSignal,
  ): Promise<ByteSource> {
    const how: Compression = { deflatedFrom: dataOffset };
    const { size } = await fs.stat(await this.inflated(source, version, how, signal));
    const read = async (offset: number, length: number, options?: { signal?: AbortSignal }) => {
      if (offset < 0 || length <= 0 || offset + length > size)
        throw new CorruptFile(`${source.key}: bytes ${offset}+${length} lie past the inflated object`);
      const handle = await fs.open(await this.inflated(source, version, how, options?.signal), 'r');
      try {
        const out = Buffer.alloc(length);
        const { bytesRead } = await handle.read(out, 0, length, offset);
        if (bytesRead !== length) throw new CorruptFile(`${source.key}: short read of the inflated object`);
        return new Uint8Array(out.buffer, out.byteOffset, length);
      } finally {
        await handle.close();
      }
    };
    return { key: source.key, size, identity: `${source.identity}#inflated`, read };
  }

  /** The decompressed file of a version, made once (shared by concurrent callers). */
  private inflated(
    source: ByteSource,
    version: string,
    how: Compression,
    signal?: AbortSignal,
  ): Promise<string> {
    const suffix = 'gzip' in how ? '.nii' : '.dcm';
    const name = createHash('sha256').update(`${source.key}\0${version}`).digest('hex').slice(0, 32) + suffix;
    const file = path.join(this.cache.dir, name);
    if (this.files.has(name)) {
      const size = this.files.get(name)!;
      this.files.delete(name);
      this.files.set(name, size);
      return Promise.resolve(file);
    }
    let pending = this.inflating.get(name);
    if (!pending) {
      pending = this.inflate(source, file, name, how, signal).finally(() => this.inflating.delete(name));
      this.inflating.set(name, pending);
    }
    return pending;
  }

  private async inflate(
    source: ByteSource,
    file: string,
    name: string,
    how: Compression,
    signal?: AbortSignal,
  ): Promise<string> {
    this.cleared ??= fs.rm(this.cache.dir, { recursive: true, force: true });
    await this.cleared;
    await fs.mkdir(this.cache.dir, { recursive: true });
    const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    const from = 'gzip' in how ? 0 : how.deflatedFrom;
    async function* chunks() {
      for (let at = from; at < source.size; at += STREAM_CHUNK) {
        yield Buffer.from(
          await source.read(at, Math.min(STREAM_CHUNK, source.size - at), { purpose: 'data', signal }),
        );
      }
    }
    try {
      // Bounded by the cache: a volume that inflates past it (a gzip bomb) is stopped.
      let written = 0;
      const limit = this.cache.maxBytes;
      const gunzip = 'gzip' in how ? createGunzip() : createInflateRaw();
      const out = createWriteStream(temporary);
      // A deflated DICOM object keeps its meta group as stored, before the inflated data set.
      if (from > 0) out.write(Buffer.from(await source.read(0, from, { purpose: 'data', signal })));
      gunzip.on('data', (chunk: Buffer) => {
        written += chunk.length;
        if (written > limit)
          gunzip.destroy(new CorruptFile(`${source.key}: inflates past the NIfTI cache (${limit} bytes)`));
      });
      await pipeline(Readable.from(chunks()), gunzip, out, { signal });
      await fs.rename(temporary, file);
      const { size } = await fs.stat(file);
      this.files.set(name, size);
      this.bytes += size;
      await this.evict(name);
      return file;
    } catch (e) {
      await fs.rm(temporary, { force: true });
      if (e instanceof Error && e.name === 'AbortError') throw e;
      if (e instanceof CorruptFile) throw e;
      throw new CorruptFile(`${source.key}: the compressed stream cannot be read: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }

  /** Drops least recently used files until the cache fits (never the one just made). */
  private async evict(keep: string): Promise<void> {
    for (const [name, size] of this.files) {
      if (this.bytes <= this.cache.maxBytes) return;
      if (name === keep) continue;
      this.files.delete(name);
      this.bytes -= size;
      await fs.rm(path.join(this.cache.dir, name), { force: true });
    }
  }
}
