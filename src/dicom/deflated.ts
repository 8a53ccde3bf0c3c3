// The data set of a Deflated Explicit VR Little Endian file (PS3.5 §A.5) as if it were stored
// inflated: one raw deflate stream after the file meta group, which cannot be read by range, so
// the header parser inflates a growing prefix of it (read in doubling compressed chunks) only as
// far as it needs, in memory, bounded by its header limit. Offsets are those of the inflated file
// (meta group + inflated data set): what the catalog records and the frame cache serves.
// `inflateToFile` writes that inflated object out, streaming (STOW-RS checks its pixel data there).

import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createInflateRaw, inflateRawSync } from 'node:zlib';
import { CorruptFile, UnsupportedFormat } from '../errors.js';
import type { ByteSource, ReadOptions } from '../storage/types.js';

const FIRST_CHUNK = 16 * 1024;
const STREAM_CHUNK = 4 * 1024 * 1024;

/** The inflated view of a deflated object, filled on demand (`fill`), never past `limit` bytes. */
export class InflatingView implements ByteSource {
  readonly key: string;
  readonly identity: string;
  private inflated = new Uint8Array(0);
  private compressed = 0;
  /** Whether the whole compressed stream has been inflated (`size` is then exact). */
  private final = false;

  constructor(
    private readonly source: ByteSource,
    /** Where the deflate stream starts (the end of the file meta group). */
    readonly dataOffset: number,
    private readonly limit: number,
    private readonly signal?: AbortSignal,
  ) {
    this.key = source.key;
    this.identity = source.identity;
  }

  /** Exact once the stream is inflated to its end; until then larger than any offset asked. */
  get size(): number {
    return this.final ? this.dataOffset + this.inflated.length : Number.MAX_SAFE_INTEGER;
  }

  /** Inflates until `end` (absolute offset) is available or the stream ends. */
  async fill(end: number): Promise<void> {
    while (!this.final && this.dataOffset + this.inflated.length < end) {
      const total = this.source.size - this.dataOffset;
      if (total <= 0) {
        this.final = true; // no data set at all: the parser finds it truncated
        return;
      }
      this.compressed = Math.min(total, Math.max(FIRST_CHUNK, this.compressed * 2));
      const prefix = await this.source.read(this.dataOffset, this.compressed, {
        purpose: 'metadata',
        signal: this.signal,
      });
      try {
        // A prefix inflates to what it holds; the output is bounded whatever the stream says.
        this.inflated = inflateRawSync(prefix, {
          finishFlush: constants.Z_SYNC_FLUSH,
          maxOutputLength: this.limit + FIRST_CHUNK,
        });
      } catch (e) {
        if (e instanceof RangeError)
          throw new UnsupportedFormat(`${this.key}: deflated data set inflates past ${this.limit} bytes`);
        throw new CorruptFile(`${this.key}: deflated data set cannot be inflated: ${(e as Error).message}`, {
          cause: e,
        });
      }
      if (this.compressed >= total) this.final = true;
    }
  }

  async read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array> {
    if (offset < this.dataOffset)
      throw new CorruptFile(`${this.key}: read of the meta group through the inflated view`);
    void options;
    await this.fill(offset + length);
    const from = offset - this.dataOffset;
    if (from + length > this.inflated.length)
      throw new CorruptFile(
        `${this.key}: deflated data set truncated at byte ${this.dataOffset + this.inflated.length}`,
      );
    return this.inflated.subarray(from, from + length);
  }
}

/** Where the deflate stream of a deflated Part 10 object starts: after its meta group (by its length). */
export async function deflatedDataOffset(source: ByteSource, signal?: AbortSignal): Promise<number> {
  if (source.size < 144) throw new CorruptFile(`${source.key}: no file meta group`);
  const head = await source.read(132, 12, { purpose: 'metadata', signal });
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const isGroupLength = view.getUint32(0, true) === 0x00000002 && head[4] === 0x55 && head[5] === 0x4c;
  const end = 144 + view.getUint32(8, true);
  if (!isGroupLength || end > source.size)
    throw new CorruptFile(
      `${source.key}: deflated object without a usable File Meta Information Group Length`,
    );
  return end;
}

/**
 * Writes a deflated object as the file it would be inflated (meta group + inflated data set, the
 * offsets the parser reports with `inflate`) to `target`, streaming, refusing past `limit` bytes
 * (`UnsupportedFormat`) and a stream that does not inflate to its end (`CorruptFile`). Returns its size.
 */
export async function inflateToFile(
  source: ByteSource,
  dataOffset: number,
  target: string,
  limit: number,
  signal?: AbortSignal,
): Promise<number> {
  let written = dataOffset;
  async function* compressed() {
    for (let at = dataOffset; at < source.size; at += STREAM_CHUNK) {
      yield Buffer.from(
        await source.read(at, Math.min(STREAM_CHUNK, source.size - at), { purpose: 'data', signal }),
      );
    }
  }
  const bounded = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      written += chunk.length;
      if (written > limit)
        done(new UnsupportedFormat(`${source.key}: deflated data set inflates past ${limit} bytes`));
      else done(null, chunk);
    },
  });
  const meta = await source.read(0, dataOffset, { purpose: 'metadata', signal });
  const out = createWriteStream(target);
  out.write(Buffer.from(meta));
  try {
    await pipeline(Readable.from(compressed()), createInflateRaw(), bounded, out, { signal });
  } catch (e) {
    if (e instanceof UnsupportedFormat || (e as Error).name === 'AbortError') throw e;
    throw new CorruptFile(`${source.key}: deflated data set cannot be inflated: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return written;
}
