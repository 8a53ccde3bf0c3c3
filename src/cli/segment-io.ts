// Inputs and outputs of `medstream segment` and `medstream eval`: a volume from a NIfTI file, a
// DICOM folder, or a key/prefix in the configured storage (--storage, detected by content, not by
// extension); and outputs written all-or-nothing (a temporary file in the target folder, renamed
// into place only once complete), so a failed run never leaves a half-written mask.

import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BadRequest, NotFound } from '../errors.js';
import { createStorage } from '../storage/index.js';
import type { Storage } from '../storage/types.js';
import { LocalStorage } from '../storage/local.js';
import { openSeriesSources, readDicomSeries } from '../volumes/dicom-series.js';
import type { FrameSampleDecoder } from '../volumes/frame-samples.js';
import { looksLikeNifti, gunzipPrefix, isGzip } from '../volumes/nifti-header.js';
import { readNiftiVolume } from '../volumes/nifti.js';
import type { Volume } from '../volumes/volume.js';
import type { Config } from './config.js';
import { retryPolicyOf } from './serve.js';

export interface VolumeLoader {
  load(input: string, onSlice?: (done: number, total: number) => void): Promise<Volume>;
  close(): Promise<void>;
}

/**
 * Loads volumes: with `config.storage` set, `input` is a key (a NIfTI object, or a prefix holding
 * a DICOM series) in that store; otherwise a local file or folder.
 */
export async function createVolumeLoader(config: Config, decoder: FrameSampleDecoder): Promise<VolumeLoader> {
  const remote = config.storage
    ? await createStorage(config.storage, {
        s3Endpoint: config.s3Endpoint,
        s3Region: config.s3Region,
        s3ForcePathStyle: config.s3ForcePathStyle,
        retry: retryPolicyOf(config),
      })
    : undefined;
  const fromStorage = async (
    storage: Storage,
    key: string,
    onSlice?: (d: number, t: number) => void,
  ): Promise<Volume> => {
    let size: number | undefined;
    if (key !== '') {
      try {
        size = (await storage.stat(key)).size;
      } catch (e) {
        if (!(e instanceof NotFound)) throw e;
      }
    }
    if (size !== undefined) {
      const source = await storage.open(key);
      const head = await source.read(0, Math.min(size, 64 * 1024), { purpose: 'metadata' });
      const plain = isGzip(head) ? gunzipPrefix(head) : head;
      if (looksLikeNifti(plain)) return readNiftiVolume(await source.read(0, size, { purpose: 'data' }));
      // One DICOM object: a series of one (the pipeline refuses it as 2D).
      return readDicomSeries([source], decoder, { onSlice });
    }
    const prefix = key === '' || key.endsWith('/') ? key : `${key}/`;
    return readDicomSeries(await openSeriesSources(storage, prefix), decoder, { onSlice });
  };
  return {
    async load(input, onSlice) {
      if (remote) return fromStorage(remote, input.replace(/^\/+/, ''), onSlice);
      const resolved = path.resolve(input);
      let info;
      try {
        info = await stat(resolved);
      } catch {
        throw new BadRequest(`input ${input} does not exist`);
      }
      if (info.isDirectory()) {
        const local = await LocalStorage.create(resolved);
        try {
          return await fromStorage(local, '', onSlice);
        } finally {
          await local.close();
        }
      }
      const local = await LocalStorage.create(path.dirname(resolved));
      try {
        return await fromStorage(local, path.basename(resolved), onSlice);
      } finally {
        await local.close();
      }
    },
    async close() {
      await remote?.close();
    },
  };
}

/** A set of output files that appear together or not at all. */
export class AtomicOutputs {
  private readonly staged: { temp: string; target: string }[] = [];

  /** Writes `bytes` to a temporary file beside `target` (created folders included). */
  async stage(target: string, bytes: Uint8Array | string): Promise<void> {
    const resolved = path.resolve(target);
    await mkdir(path.dirname(resolved), { recursive: true });
    const temp = path.join(
      path.dirname(resolved),
      `.${path.basename(resolved)}.${randomBytes(6).toString('hex')}.tmp`,
    );
    this.staged.push({ temp, target: resolved });
    await writeFile(temp, bytes);
  }

  /** Renames every staged file into place. */
  async commit(): Promise<string[]> {
    for (const { temp, target } of this.staged) await rename(temp, target);
    const written = this.staged.map((s) => s.target);
    this.staged.length = 0;
    return written;
  }

  /** Deletes every staged file (after a failure). */
  async discard(): Promise<void> {
    await Promise.all(this.staged.map(({ temp }) => rm(temp, { force: true })));
    this.staged.length = 0;
  }
}

/** Refuses an output path whose folder cannot be created or that names a folder. */
export async function checkOutputPath(target: string, what: string): Promise<void> {
  const resolved = path.resolve(target);
  const info = await stat(resolved).catch(() => undefined);
  if (info?.isDirectory()) throw new BadRequest(`${what} ${target} is a folder; give a file name`);
}

/** A file name for an input's mask in a batch: the input's base name without NIfTI/DICOM extensions. */
export function maskNameFor(input: string): string {
  const base = path.basename(input.replace(/[/\\]+$/, '')) || 'volume';
  return `${base.replace(/\.nii(\.gz)?$/i, '').replace(/\.dcm$/i, '')}_mask.nii.gz`;
}
