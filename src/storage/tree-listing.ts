// S3-style listing (byte-ordered keys, prefix, `/` delimiter, cursor pages) over any store that
// is a tree of directories: the local filesystem and HTTP autoindex pages. The backend supplies
// only "read one directory"; ordering, pruning, folding into folders and paging live here once.
//
// Order: a directory's subtree is visited where the key `name/` sorts among its siblings, so a
// depth-first walk yields keys in exactly the byte order S3's ListObjectsV2 uses ("a-b" < "a/c").

import { BadRequest } from '../errors.js';
import type { ListOptions } from './types.js';
import { validateKey, validatePrefix } from './keys.js';

export const MAX_LIST_LIMIT = 1000;

/** One entry of a directory: a subdirectory (with the backend's handle for it) or a file. */
export type TreeEntry<D, F> = { name: string; dir: D } | { name: string; file: F };

export interface TreeSource<D, F> {
  /**
   * The directory at `dirKey` (`''` for the root, else ending in `/`), reached directly, or
   * `undefined` when there is none. Lets a prefix listing start where the prefix points.
   */
  resolveDir(dirKey: string, signal?: AbortSignal): Promise<D | undefined>;
  /** The entries of one directory, in any order. Hidden names are dropped by the walker. */
  readDir(dir: D, dirKey: string, signal?: AbortSignal): Promise<Array<TreeEntry<D, F>>>;
}

export interface TreeWalkLimits {
  /** Directories deeper than this (counted from the root) are not entered. */
  maxDepth: number;
  /** Most directories read in one call; past it the page ends early (see `listTree`). */
  maxDirectories: number;
}

export interface TreePage<F> {
  files: Array<{ key: string; file: F }>;
  prefixes: string[];
  nextCursor?: string;
}

/** Byte order of the UTF-8 encodings, as S3 sorts keys (JS `<` compares UTF-16 units). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function encodeCursor(lastKey: string): string {
  return Buffer.from(lastKey, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (key.length === 0 || encodeCursor(key) !== cursor) throw new BadRequest('invalid list cursor');
  return key;
}

/** The page size: 1..1000, default 1000; out-of-range values are clamped, as the S3 backend does. */
export function checkLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return MAX_LIST_LIMIT;
  return Math.min(MAX_LIST_LIMIT, Math.max(1, Math.floor(limit)));
}

type Item<F> = { key: string; file: F } | { key: string; folder: true };

/**
 * One page of the listing. Ends early, with a `nextCursor`, when `maxDirectories` directories
 * have been read; with nothing found by then it throws `BadRequest` asking for a narrower
 * prefix, so a huge tree never turns one request into an unbounded walk.
 */
export async function listTree<D, F>(
  source: TreeSource<D, F>,
  options: ListOptions,
  limits: TreeWalkLimits,
): Promise<TreePage<F>> {
  const prefix = validatePrefix(options.prefix);
  const limit = checkLimit(options.limit);
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
  const folding = options.delimiter === '/';
  const startKey = prefix.slice(0, prefix.lastIndexOf('/') + 1);
  const empty: TreePage<F> = { files: [], prefixes: [] };
  if (startKey.split('/').some((segment) => segment.startsWith('.'))) return empty;
  const start = await source.resolveDir(startKey, options.signal);
  if (start === undefined) return empty;

  const items: Array<Item<F>> = [];
  let directoriesRead = 0;
  let stoppedEarly = false;
  const isAfterCursor = (key: string) => after === undefined || compareKeys(key, after) > 0;
  // A subtree whose every key sorts at or before the cursor was listed on an earlier page.
  const subtreeListed = (dirKey: string) =>
    after !== undefined && compareKeys(after, dirKey) > 0 && !after.startsWith(dirKey);

  const walk = async (dir: D, dirKey: string, depth: number): Promise<boolean> => {
    if (directoriesRead >= limits.maxDirectories) {
      stoppedEarly = true;
      return false;
    }
    directoriesRead++;
    const entries = (await source.readDir(dir, dirKey, options.signal))
      .filter((entry) => !entry.name.startsWith('.') && entry.name !== '' && !entry.name.includes('/'))
      .map((entry) => ({ entry, key: dirKey + entry.name + ('dir' in entry ? '/' : '') }))
      .filter(({ key }) => isValidKey(key));
    const sortKeys = new Map(entries.map(({ key }) => [key, Buffer.from(key, 'utf8')]));
    entries.sort((a, b) => Buffer.compare(sortKeys.get(a.key)!, sortKeys.get(b.key)!));
    for (const { entry, key } of entries) {
      if (items.length > limit) return false;
      if ('file' in entry) {
        if (key.startsWith(prefix) && isAfterCursor(key)) items.push({ key, file: entry.file });
        continue;
      }
      const insidePrefix = key.startsWith(prefix) && key !== prefix;
      if (!insidePrefix && !prefix.startsWith(key)) continue;
      if (folding && insidePrefix) {
        if (isAfterCursor(key)) items.push({ key, folder: true });
        continue;
      }
      if (subtreeListed(key) || depth + 1 > limits.maxDepth) continue;
      if (!(await walk(entry.dir, key, depth + 1))) return false;
    }
    return true;
  };
  await walk(start, startKey, startKey.split('/').length - 1);

  if (stoppedEarly && items.length === 0) {
    throw new BadRequest(
      `listing stopped after reading ${limits.maxDirectories} directories without finding an object; ` +
        'list with a longer prefix or with delimiter "/"',
    );
  }
  const page = items.slice(0, limit);
  const more = items.length > limit || (stoppedEarly && page.length > 0);
  const result: TreePage<F> = {
    files: page.flatMap((item) => ('file' in item ? [{ key: item.key, file: item.file }] : [])),
    prefixes: page.flatMap((item) => ('folder' in item ? [item.key] : [])),
  };
  if (more) result.nextCursor = encodeCursor(page[page.length - 1].key);
  return result;
}

function isValidKey(key: string): boolean {
  try {
    validateKey(key);
    return true;
  } catch {
    return false;
  }
}

/** `fn` over `items`, at most `concurrency` at a time, results in input order. */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}
