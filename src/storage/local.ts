// Storage backend for a local directory. The root is a jail: a key is validated, joined to the
// real root and resolved with realpath, and whatever resolves outside the root is reported as
// `NotFound` — the same answer as a missing file, and the same objects `list()` shows (it skips
// escaping symlinks), so a client cannot probe what lies outside. Symlinks that stay inside the
// root are followed.
//
// Reads are bound to the version that was opened: identity is size + mtime + inode, and each read
// first stats the path; a file rewritten in place or replaced by rename fails with
// `ObjectChanged`. Open file handles are kept in a small LRU (`OpenFileCache`) keyed by path and
// identity, so a tile read costs one pread and a path stat run beside it (shared by the reads of
// one file in flight at the same time) instead of open/fstat/read/close.

import { promises as fs, constants as fsConstants } from 'node:fs';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import {
  AccessDenied,
  ConfigError,
  InvalidRange,
  MedStreamError,
  NotFound,
  ObjectChanged,
  StorageUnavailable,
  throwIfAborted,
} from '../errors.js';
import { validateKey } from './keys.js';
import { listTree, mapConcurrent } from './tree-listing.js';
import type { TreeEntry, TreeSource } from './tree-listing.js';
import type {
  ByteSource,
  ListOptions,
  ListPage,
  ObjectStat,
  ReadOptions,
  RequestObserver,
  Storage,
  StorageRequestEvent,
} from './types.js';

export interface LocalStorageOptions {
  root: string;
  observer?: RequestObserver;
  /** Open file handles kept between reads (default 64). */
  maxOpenFiles?: number;
}

const MAX_LIST_DEPTH = 32;
/** Directories read by one list() call at most (bounds a tree of duplicating symlinks). */
const MAX_LIST_DIRECTORIES = 100_000;
/** Stat calls in flight at once while describing a listing page. */
const LIST_STAT_CONCURRENCY = 32;

export class LocalStorage implements Storage {
  readonly kind = 'local';
  readonly description: string;
  private readonly root: string;
  private readonly observer: RequestObserver | undefined;
  private readonly handles: OpenFileCache;
  private realRoot: Promise<string> | undefined;
  /** Path stats in flight: concurrent reads of one file share one identity check. */
  private readonly statsInFlight = new Map<string, Promise<Stats | undefined>>();

  constructor(options: LocalStorageOptions) {
    this.root = path.resolve(options.root);
    this.description = `local directory ${this.root}`;
    this.observer = options.observer;
    this.handles = new OpenFileCache(options.maxOpenFiles ?? 64);
  }

  /** Builds a LocalStorage after checking that `root` exists and is a directory. */
  static async create(root: string, options: Omit<LocalStorageOptions, 'root'> = {}): Promise<LocalStorage> {
    const storage = new LocalStorage({ ...options, root });
    await storage.resolveRoot();
    return storage;
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectStat> {
    return this.observed('stat', key, async () => {
      throwIfAborted(options.signal);
      const { stats } = await this.resolveFile(key);
      return { ...describeFile(key, stats), identity: identityOf(stats) };
    });
  }

  async put(key: string, file: string, options: { signal?: AbortSignal } = {}): Promise<ObjectStat> {
    await this.observed('write', key, async () => {
      validateKey(key);
      if (key.endsWith('/')) throw new InvalidRange(`${key} is a folder name`);
      throwIfAborted(options.signal);
      const realRoot = await this.resolveRoot();
      const target = path.join(realRoot, key);
      try {
        await fs.mkdir(path.dirname(target), { recursive: true });
        // The folder must not resolve outside the root through a symlink.
        if (!isInside(realRoot, await fs.realpath(path.dirname(target))))
          throw new NotFound(`${key} not found`);
        // A hidden temporary name in the same folder, so the rename is atomic on every filesystem.
        const temporary = path.join(
          path.dirname(target),
          `.${path.basename(target)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
        );
        try {
          await fs.copyFile(file, temporary);
          await fs.rename(temporary, target);
        } catch (e) {
          await fs.rm(temporary, { force: true });
          throw e;
        }
      } catch (e) {
        throw e instanceof MedStreamError ? e : fsError(e, key);
      }
    });
    return this.stat(key, options);
  }

  async open(key: string, options: { signal?: AbortSignal } = {}): Promise<ByteSource> {
    return this.observed('stat', key, async () => {
      throwIfAborted(options.signal);
      const { realPath, stats } = await this.resolveFile(key);
      return new LocalByteSource(this, key, realPath, stats);
    });
  }

  async list(options: ListOptions = {}): Promise<ListPage> {
    return this.observed('list', options.prefix ?? '', async () => {
      throwIfAborted(options.signal);
      const realRoot = await this.resolveRoot();
      const page = await listTree(new LocalTree(realRoot), options, {
        maxDepth: MAX_LIST_DEPTH,
        maxDirectories: MAX_LIST_DIRECTORIES,
      });
      throwIfAborted(options.signal);
      const described = await mapConcurrent(page.files, LIST_STAT_CONCURRENCY, async ({ key, file }) => {
        const stats = await fs.stat(file).catch(() => undefined); // gone since readdir: leave it out
        return stats?.isFile() ? describeFile(key, stats) : undefined;
      });
      const result: ListPage = {
        objects: described.filter((info) => info !== undefined),
        prefixes: page.prefixes,
      };
      if (page.nextCursor !== undefined) result.nextCursor = page.nextCursor;
      return result;
    });
  }

  async close(): Promise<void> {
    await this.handles.closeAll();
  }

  /** @internal Reads for `LocalByteSource`, which shares this storage's handle cache. */
  async readAt(
    source: LocalByteSource,
    offset: number,
    length: number,
    options: ReadOptions,
  ): Promise<Uint8Array> {
    return this.observed(
      'read',
      source.key,
      async () => {
        throwIfAborted(options.signal);
        // The identity check (a stat of the path) runs beside the read, not before it: a read
        // costs the longer of the two instead of their sum, and its bytes are returned only when
        // the path still names the version that was opened (else ObjectChanged, as before).
        const [check, read] = await Promise.allSettled([
          this.statShared(source.realPath).then(
            (current) => {
              if (current === undefined || identityOf(current) !== source.identity) {
                throw new ObjectChanged(`${source.key} was replaced or removed since it was opened`);
              }
            },
            (e: unknown) => {
              throw fsError(e, source.key);
            },
          ),
          this.readOpened(source, offset, length),
        ]);
        if (check.status === 'rejected') throw check.reason;
        if (read.status === 'rejected') throw read.reason;
        throwIfAborted(options.signal);
        return read.value;
      },
      (bytes) => bytes.length,
    );
  }

  /**
   * The path's stats (undefined when it is gone), shared by the reads that ask while one stat is
   * in flight: under load (many tiles of one slide at once) one stat checks a batch of reads.
   * A joined stat started at most one stat's duration before the read — the same window the
   * check had when it ran before the read.
   */
  private statShared(realPath: string): Promise<Stats | undefined> {
    let pending = this.statsInFlight.get(realPath);
    if (!pending) {
      pending = fs
        .stat(realPath)
        .catch((e: unknown) => {
          if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR')) return undefined;
          throw e;
        })
        .finally(() => this.statsInFlight.delete(realPath));
      this.statsInFlight.set(realPath, pending);
    }
    return pending;
  }

  /** `length` bytes at `offset` through the handle cache (the handle is checked when opened). */
  private async readOpened(source: LocalByteSource, offset: number, length: number): Promise<Uint8Array> {
    const lease = await this.handles.acquire(source.realPath, source.identity, async (handle) => {
      const opened = await handle.stat();
      if (identityOf(opened) !== source.identity) {
        throw new ObjectChanged(`${source.key} was replaced since it was opened`);
      }
    });
    try {
      return await readFully(lease.handle, offset, length, source.key);
    } finally {
      lease.release();
    }
  }

  private resolveRoot(): Promise<string> {
    this.realRoot ??= (async () => {
      let real: string;
      try {
        real = await fs.realpath(this.root);
      } catch (e) {
        throw new ConfigError(`storage root ${this.root} cannot be resolved: ${errorText(e)}`);
      }
      if (!(await fs.stat(real)).isDirectory())
        throw new ConfigError(`storage root ${this.root} is not a directory`);
      return real;
    })();
    // A failed resolution is not kept: the directory may be mounted later.
    this.realRoot.catch(() => (this.realRoot = undefined));
    return this.realRoot;
  }

  /** The real path and stats of the regular file `key` names inside the root. */
  private async resolveFile(key: string): Promise<{ realPath: string; stats: Stats }> {
    validateKey(key);
    if (key.endsWith('/')) throw new NotFound(`${key} is a folder, not an object`);
    const realRoot = await this.resolveRoot();
    let realPath: string;
    let stats: Stats;
    try {
      realPath = await fs.realpath(path.join(realRoot, key));
      stats = await fs.stat(realPath);
    } catch (e) {
      throw fsError(e, key);
    }
    if (!isInside(realRoot, realPath) || !stats.isFile()) throw new NotFound(`${key} not found`);
    return { realPath, stats };
  }

  private async observed<T>(
    kind: StorageRequestEvent['kind'],
    key: string,
    operation: () => Promise<T>,
    bytesOf: (result: T) => number = () => 0,
  ): Promise<T> {
    const started = performance.now();
    try {
      const result = await operation();
      this.report(kind, key, bytesOf(result), started, 'ok');
      return result;
    } catch (e) {
      this.report(kind, key, 0, started, e instanceof MedStreamError ? e.code : 'internal_error');
      throw e;
    }
  }

  private report(
    kind: StorageRequestEvent['kind'],
    key: string,
    bytes: number,
    started: number,
    outcome: string,
  ) {
    this.observer?.onRequest({ kind, key, bytes, ms: performance.now() - started, outcome, attempt: 1 });
  }
}

class LocalByteSource implements ByteSource {
  readonly size: number;
  readonly identity: string;

  constructor(
    private readonly storage: LocalStorage,
    readonly key: string,
    readonly realPath: string,
    stats: Stats,
  ) {
    this.size = stats.size;
    this.identity = identityOf(stats);
  }

  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      throw new InvalidRange(`invalid range: offset ${offset}, length ${length}`);
    }
    if (offset + length > this.size) {
      throw new InvalidRange(
        `range [${offset}, ${offset + length}) is outside ${this.key} (${this.size} bytes)`,
      );
    }
    return this.storage.readAt(this, offset, length, options);
  }
}

/** A directory during a listing walk: its real path and those of the directories above it. */
interface LocalDir {
  real: string;
  chain: readonly string[];
}

/** Directories as the listing walker sees them; files are their real paths. */
class LocalTree implements TreeSource<LocalDir, string> {
  constructor(private readonly realRoot: string) {}

  async resolveDir(dirKey: string): Promise<LocalDir | undefined> {
    try {
      const real = await fs.realpath(path.join(this.realRoot, dirKey));
      const isDir = isInside(this.realRoot, real) && (await fs.stat(real)).isDirectory();
      return isDir ? { real, chain: [real] } : undefined;
    } catch (e) {
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR') || isErrno(e, 'ELOOP')) return undefined;
      throw fsError(e, dirKey);
    }
  }

  async readDir(dir: LocalDir, dirKey: string): Promise<Array<TreeEntry<LocalDir, string>>> {
    let dirents;
    try {
      dirents = await fs.readdir(dir.real, { withFileTypes: true });
    } catch (e) {
      // A folder removed or made unreadable during the walk is skipped, not fatal.
      if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR') || isErrno(e, 'EACCES')) return [];
      throw fsError(e, dirKey);
    }
    const entries: Array<TreeEntry<LocalDir, string>> = [];
    const enter = (real: string) => ({ real, chain: [...dir.chain, real] });
    for (const dirent of dirents) {
      if (dirent.name.startsWith('.')) continue;
      const full = path.join(dir.real, dirent.name);
      if (dirent.isFile()) entries.push({ name: dirent.name, file: full });
      else if (dirent.isDirectory()) entries.push({ name: dirent.name, dir: enter(full) });
      else if (dirent.isSymbolicLink()) {
        const target = await this.followLink(full, dir);
        if (target?.kind === 'file') entries.push({ name: dirent.name, file: target.real });
        if (target?.kind === 'dir') entries.push({ name: dirent.name, dir: enter(target.real) });
      }
    }
    return entries;
  }

  /**
   * Where a symlink leads, if it stays inside the root and is a file or a directory. A link to
   * a directory above it on disk or already on the walk's path would make the walk loop: skipped.
   */
  private async followLink(
    link: string,
    parent: LocalDir,
  ): Promise<{ kind: 'file' | 'dir'; real: string } | undefined> {
    try {
      const real = await fs.realpath(link);
      if (!isInside(this.realRoot, real)) return undefined;
      const stats = await fs.stat(real);
      if (stats.isFile()) return { kind: 'file', real };
      const loops = parent.chain.some((above) => isInside(real, above));
      if (stats.isDirectory() && !loops) return { kind: 'dir', real };
    } catch {
      // dangling or unreadable link: not an object
    }
    return undefined;
  }
}

interface FileLease {
  handle: FileHandle;
  release(): void;
}

interface CachedHandle {
  opening: Promise<FileHandle>;
  users: number;
  evicted: boolean;
}

/**
 * Open handles by path + identity, least recently used first. A handle stays open while a read
 * holds it even if it is evicted meanwhile; it is closed when the last holder releases it.
 */
class OpenFileCache {
  private readonly entries = new Map<string, CachedHandle>();

  constructor(private readonly capacity: number) {}

  async acquire(realPath: string, identity: string, verify: (handle: FileHandle) => Promise<void>) {
    const cacheKey = `${identity}\0${realPath}`;
    let entry = this.entries.get(cacheKey);
    if (entry === undefined) {
      const opening = fs.open(realPath, fsConstants.O_RDONLY).then(async (handle) => {
        try {
          await verify(handle);
          return handle;
        } catch (e) {
          await handle.close();
          throw e;
        }
      });
      entry = { opening, users: 0, evicted: false };
      const created = entry;
      opening.catch(() => {
        created.evicted = true;
        if (this.entries.get(cacheKey) === created) this.entries.delete(cacheKey);
      });
    } else {
      this.entries.delete(cacheKey); // re-inserted below as most recently used
    }
    if (!entry.evicted) this.entries.set(cacheKey, entry);
    entry.users++;
    this.evictBeyondCapacity();
    const held = entry;
    let handle: FileHandle;
    try {
      handle = await held.opening;
    } catch (e) {
      held.users--;
      throw e;
    }
    let released = false;
    return {
      handle,
      release: () => {
        if (released) return;
        released = true;
        held.users--;
        if (held.evicted && held.users === 0) void handle.close().catch(() => undefined);
      },
    } satisfies FileLease;
  }

  async closeAll(): Promise<void> {
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((entry) => this.evict(entry)));
  }

  private evictBeyondCapacity() {
    for (const [cacheKey, entry] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(cacheKey);
      void this.evict(entry);
    }
  }

  private async evict(entry: CachedHandle) {
    entry.evicted = true;
    const handle = await entry.opening.catch(() => undefined);
    if (handle !== undefined && entry.users === 0) await handle.close().catch(() => undefined);
  }
}

/** Exactly `length` bytes at `position`; a file that ends early was truncated since it was opened. */
async function readFully(
  handle: FileHandle,
  position: number,
  length: number,
  key: string,
): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      throw new ObjectChanged(
        `${key} ended after ${position + filled} bytes: it was truncated since it was opened`,
      );
    }
    filled += bytesRead;
  }
  return buffer;
}

function identityOf(stats: Stats): string {
  return `${stats.size}-${stats.mtimeMs}-${stats.ino}`;
}

function describeFile(key: string, stats: Stats) {
  return { key, size: stats.size, lastModified: stats.mtime };
}

function isInside(root: string, candidate: string): boolean {
  return candidate === root || candidate.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

function fsError(e: unknown, key: string): MedStreamError {
  if (e instanceof MedStreamError) return e;
  if (isErrno(e, 'ENOENT') || isErrno(e, 'ENOTDIR') || isErrno(e, 'ELOOP') || isErrno(e, 'ENAMETOOLONG')) {
    return new NotFound(`${key} not found`, { cause: e });
  }
  if (isErrno(e, 'EACCES') || isErrno(e, 'EPERM'))
    return new AccessDenied(`${key}: permission denied`, { cause: e });
  return new StorageUnavailable(`${key}: ${errorText(e)}`, { cause: e, retryable: isErrno(e, 'EMFILE') });
}

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
