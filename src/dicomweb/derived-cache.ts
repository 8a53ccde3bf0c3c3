// Where derived frames (dicomweb/derived.ts) live once made: a small in-memory LRU of hot frames,
// the replicas' shared Redis cache of encoded images when there is one (--redis-url), a bounded
// on-disk cache (one file per frame under --derived-cache's directory, least recently
// used evicted past its byte bound, adopted again after a restart), and optionally the bucket
// itself under a derived prefix (--derived-store: written with storage `put`, read back by every
// replica and after every restart). Each layer is a miss when it fails; none is required.

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { MedStreamError, NotFound } from '../errors.js';
import { ByteLru } from '../io/lru.js';
import type { Storage } from '../storage/types.js';
import type { SharedImageCache } from '../tiles/shared-cache.js';

export interface DerivedCacheOptions {
  /** Directory of the on-disk cache; undefined = no disk cache. */
  dir?: string;
  /** Bytes the disk cache may hold (LRU); 0 = no disk cache. */
  maxBytes: number;
  /** Bytes of hot frames kept in memory; 0 = none. */
  memoryBytes?: number;
  /** The shared (Redis) cache of encoded images, for hot frames across replicas. */
  shared?: SharedImageCache;
  /** Write-back store: derived frames are `put` under `prefix` and read from there. */
  store?: { storage: Storage; prefix: string };
  /** Where files bound for the store are staged when there is no disk cache. */
  tmpDir?: string;
  /** Told about store writes that failed (not fatal: the frame is served anyway). */
  onStoreError?: (error: unknown) => void;
}

/** The layers a derived frame is found in, nearest first. */
export const DERIVED_CACHE_LAYERS = ['memory', 'shared', 'disk', 'store'] as const;
export type DerivedCacheLayer = (typeof DERIVED_CACHE_LAYERS)[number];

export interface DerivedCacheStats {
  memoryBytes: number;
  diskFiles: number;
  diskBytes: number;
  diskMaxBytes: number;
  storeHits: number;
  storeWrites: number;
  /** Lookups answered, per layer (the nearest that had the frame). */
  hits: Record<DerivedCacheLayer, number>;
  /** Lookups no layer answered. */
  misses: number;
}

const KEY = /^[0-9a-f]{16,64}$/;

export class DerivedCache {
  private readonly memory: ByteLru<string, Uint8Array>;
  /** Disk files, least recently used first, with their sizes. */
  private readonly files = new Map<string, number>();
  private diskBytes = 0;
  private adopted: Promise<void> | undefined;
  private storeWrites = 0;
  private readonly hits: Record<DerivedCacheLayer, number> = { memory: 0, shared: 0, disk: 0, store: 0 };
  private misses = 0;

  constructor(private readonly options: DerivedCacheOptions) {
    this.memory = new ByteLru({ maxBytes: options.memoryBytes ?? 0, sizeOf: (b) => b.length });
  }

  private get disk(): string | undefined {
    return this.options.dir !== undefined && this.options.maxBytes > 0 ? this.options.dir : undefined;
  }

  /** The frame stored under `key`, from the nearest layer that has it (and copied to the nearer ones). */
  async get(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    checkKey(key);
    const hot = this.memory.get(key);
    if (hot) {
      this.hits.memory++;
      return hot;
    }
    const shared = await this.options.shared?.get(`derived:${key}`, signal);
    if (shared) {
      this.hits.shared++;
      const bytes = new Uint8Array(shared.body);
      this.memory.set(key, bytes);
      return bytes;
    }
    const disk = this.disk;
    // A disk cache that cannot be used (not a directory, no permission) is a miss.
    if (
      disk &&
      (await this.adopt(disk).then(
        () => true,
        () => false,
      ))
    ) {
      // Also looked for when not indexed: `medstream index --prepare` may have written it since.
      try {
        const bytes = new Uint8Array(await fs.readFile(path.join(disk, key)));
        this.touch(key, bytes.length);
        await this.evict(disk, key);
        this.memory.set(key, bytes);
        this.hits.disk++;
        return bytes;
      } catch {
        this.forget(key);
      }
    }
    const store = this.options.store;
    if (store) {
      try {
        const source = await store.storage.open(store.prefix + key, { signal });
        if (source.size > 0) {
          const bytes = await source.read(0, source.size, { purpose: 'data', signal });
          this.hits.store++;
          this.memory.set(key, bytes);
          if (disk) await this.writeDisk(disk, key, bytes).catch(() => undefined);
          return bytes;
        }
      } catch (e) {
        if (!(e instanceof NotFound) && !(e instanceof MedStreamError)) throw e;
      }
    }
    this.misses++;
    return undefined;
  }

  /** Keeps a newly made frame in every layer (the store write finishes before this resolves). */
  async set(key: string, bytes: Uint8Array): Promise<void> {
    checkKey(key);
    this.memory.set(key, bytes);
    this.options.shared?.set(`derived:${key}`, {
      body: Buffer.from(bytes),
      contentType: 'application/octet-stream',
      passthrough: false,
    });
    const disk = this.disk;
    let file: string | undefined;
    // A full or failing disk costs the cache entry, never the answer.
    if (disk) file = await this.writeDisk(disk, key, bytes).catch(() => undefined);
    const store = this.options.store;
    if (!store?.storage.put) return;
    let staged: string | undefined;
    try {
      if (!file) {
        const dir = this.options.tmpDir ?? disk;
        if (!dir) return;
        await fs.mkdir(dir, { recursive: true });
        staged = path.join(dir, `.derived-${key}-${randomBytes(6).toString('hex')}`);
        await fs.writeFile(staged, bytes);
      }
      await store.storage.put(store.prefix + key, staged ?? file!, {
        contentType: 'application/octet-stream',
      });
      this.storeWrites++;
    } catch (e) {
      this.options.onStoreError?.(e);
    } finally {
      if (staged) await fs.rm(staged, { force: true });
    }
  }

  stats(): DerivedCacheStats {
    return {
      memoryBytes: this.memory.bytes,
      diskFiles: this.files.size,
      diskBytes: this.diskBytes,
      diskMaxBytes: this.disk ? this.options.maxBytes : 0,
      storeHits: this.hits.store,
      storeWrites: this.storeWrites,
      hits: { ...this.hits },
      misses: this.misses,
    };
  }

  /** Takes over the files an earlier process left (oldest first), trimmed to the bound. */
  private adopt(dir: string): Promise<void> {
    this.adopted ??= (async () => {
      await fs.mkdir(dir, { recursive: true });
      const found: Array<{ key: string; size: number; at: number }> = [];
      for (const name of await fs.readdir(dir)) {
        const file = path.join(dir, name);
        if (!KEY.test(name)) {
          // A write cut short by a crash.
          if (name.startsWith('.tmp-')) await fs.rm(file, { force: true });
          continue;
        }
        const stat = await fs.stat(file).catch(() => undefined);
        if (stat?.isFile()) found.push({ key: name, size: stat.size, at: stat.mtimeMs });
      }
      found.sort((a, b) => a.at - b.at);
      for (const f of found) this.touch(f.key, f.size);
      await this.evict(dir);
    })();
    return this.adopted;
  }

  private async writeDisk(dir: string, key: string, bytes: Uint8Array): Promise<string | undefined> {
    await this.adopt(dir);
    if (bytes.length > this.options.maxBytes) return undefined;
    const file = path.join(dir, key);
    if (!this.files.has(key)) {
      const tmp = path.join(dir, `.tmp-${key}-${randomBytes(6).toString('hex')}`);
      await fs.writeFile(tmp, bytes);
      await fs.rename(tmp, file);
    }
    this.touch(key, bytes.length);
    await this.evict(dir, key);
    return file;
  }

  private touch(key: string, size: number): void {
    this.forget(key);
    this.files.set(key, size);
    this.diskBytes += size;
  }

  private forget(key: string): void {
    const size = this.files.get(key);
    if (size === undefined) return;
    this.files.delete(key);
    this.diskBytes -= size;
  }

  /** Removes least recently used files until the bound holds (never `keep`, just written). */
  private async evict(dir: string, keep?: string): Promise<void> {
    for (const [key] of this.files) {
      if (this.diskBytes <= this.options.maxBytes) break;
      if (key === keep) continue;
      this.forget(key);
      await fs.rm(path.join(dir, key), { force: true });
    }
  }
}

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new RangeError(`derived cache key ${JSON.stringify(key)} is not a hex digest`);
}
