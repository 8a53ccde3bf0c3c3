// LocalStorage against a real temporary tree: range reads compared with fs, version binding
// (ObjectChanged), the root jail (traversal, absolute paths, escaping symlinks, NUL) and S3-style
// listing (byte order, prefix, delimiter, pages).

import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MedStreamError } from '../../src/errors.js';
import { LocalStorage } from '../../src/storage/local.js';
import type { ListOptions, ObjectInfo, StorageRequestEvent } from '../../src/storage/types.js';
import { fixture } from '../support/fixtures.js';

const SLIDE = fixture('wsi/svs/CMU-1-Small-Region.svs');
const MANY = 1100;

let outer: string;
let root: string;
let slideBytes: Buffer;
const events: StorageRequestEvent[] = [];
let storage: LocalStorage;

async function put(relative: string, content: string | Buffer = relative) {
  const full = path.join(root, relative);
  await fs.mkdir(path.dirname(full), { recursive: true });
  await fs.writeFile(full, content);
}

async function errorOf(promise: Promise<unknown>): Promise<MedStreamError> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof MedStreamError) return e;
    throw e;
  }
  throw new Error('expected a MedStreamError, but the operation succeeded');
}

async function listAll(options: ListOptions): Promise<{ keys: string[]; prefixes: string[]; pages: number }> {
  const keys: string[] = [];
  const prefixes: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await storage.list({ ...options, cursor });
    keys.push(...page.objects.map((o) => o.key));
    prefixes.push(...page.prefixes);
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== undefined && pages < 100);
  return { keys, prefixes, pages };
}

beforeAll(async () => {
  outer = await fs.mkdtemp(path.join(os.tmpdir(), 'medstream-local-'));
  root = path.join(outer, 'root');
  await fs.mkdir(root);
  slideBytes = await fs.readFile(SLIDE);
  await fs.copyFile(SLIDE, path.join(root, 'slide.svs'));
  // Outside the root: what every escape attempt below would reach if the jail failed.
  await fs.writeFile(path.join(outer, 'x'), 'outside');
  await fs.writeFile(path.join(outer, 'secret.txt'), 'secret');
  for (const name of ['a/b/c.bin', 'a/b-c.txt', 'a/b.txt', 'a/b0.txt', 'a/.dot', '.hidden', 'top.txt']) {
    await put(name);
  }
  for (const name of ['u/z.txt', 'u/é.txt', 'u/\uFFFD.txt', 'u/\u{1F600}.txt']) await put(name);
  await fs.mkdir(path.join(root, '.git/objects'), { recursive: true });
  await put('.git/objects/blob');
  await fs.mkdir(path.join(root, 'many'));
  await Promise.all(
    Array.from({ length: MANY }, (_, i) =>
      fs.writeFile(path.join(root, 'many', `f${String(i).padStart(4, '0')}`), ''),
    ),
  );
  await put(`${Array.from({ length: 40 }, () => 'd').join('/')}/deep.txt`);
  await fs.symlink('/', path.join(root, 'link-root'));
  await fs.symlink(path.join(outer, 'secret.txt'), path.join(root, 'link-out'));
  await fs.symlink(path.join(root, 'a/b/c.bin'), path.join(root, 'link-in'));
  await fs.symlink('a', path.join(root, 'linkdir-in'));
  await fs.symlink('.', path.join(root, 'loop'));
  await fs.symlink('missing', path.join(root, 'dangling'));
  try {
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
  } catch {
    // no mkfifo: the non-regular-file case is still covered by directories
  }
  storage = await LocalStorage.create(root, { observer: { onRequest: (e) => events.push(e) } });
});

afterAll(async () => {
  await storage?.close();
  if (outer) await fs.rm(outer, { recursive: true, force: true });
});

describe('LocalStorage reads', () => {
  it('stats and reads the first, middle and last bytes exactly as fs has them', async () => {
    const stat = await storage.stat('slide.svs');
    const fsStat = await fs.stat(path.join(root, 'slide.svs'));
    expect(stat.size).toBe(slideBytes.length);
    expect(stat.identity).toBe(`${fsStat.size}-${fsStat.mtimeMs}-${fsStat.ino}`);
    expect(stat.lastModified?.getTime()).toBe(fsStat.mtime.getTime());

    const source = await storage.open('slide.svs');
    expect(source.size).toBe(slideBytes.length);
    expect(source.identity).toBe(stat.identity);
    const middle = Math.floor(slideBytes.length / 2);
    for (const [offset, length] of [
      [0, 4096],
      [middle, 100_000],
      [slideBytes.length - 1, 1],
      [0, slideBytes.length],
    ]) {
      const bytes = await source.read(offset, length);
      expect(bytes).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(bytes).equals(slideBytes.subarray(offset, offset + length))).toBe(true);
    }
    const reads = events.filter((e) => e.kind === 'read' && e.key === 'slide.svs' && e.outcome === 'ok');
    expect(reads.map((e) => e.bytes)).toContain(100_000);
  });

  it('refuses ranges outside the object with InvalidRange', async () => {
    const source = await storage.open('slide.svs');
    for (const [offset, length] of [
      [slideBytes.length - 1, 2],
      [slideBytes.length, 1],
      [-1, 10],
      [0, 0],
      [1.5, 2],
    ]) {
      expect((await errorOf(source.read(offset, length))).code).toBe('invalid_range');
    }
  });

  it('fails reads with ObjectChanged once the file is rewritten in place or replaced', async () => {
    await put('mutable.bin', Buffer.alloc(1000, 1));
    const source = await storage.open('mutable.bin');
    expect((await source.read(0, 10))[0]).toBe(1);

    const file = path.join(root, 'mutable.bin');
    await fs.writeFile(file, Buffer.alloc(1000, 2)); // same size, in place
    const later = new Date(Date.now() + 5000);
    await fs.utimes(file, later, later);
    expect((await errorOf(source.read(0, 10))).code).toBe('object_changed');

    const reopened = await storage.open('mutable.bin');
    expect(reopened.identity).not.toBe(source.identity);
    expect((await reopened.read(0, 10))[0]).toBe(2);

    // Replaced by rename: same size and mtime, another inode.
    const replacement = path.join(root, 'replacement.tmp');
    await fs.writeFile(replacement, Buffer.alloc(1000, 3));
    await fs.utimes(replacement, later, later);
    await fs.rename(replacement, file);
    expect((await errorOf(reopened.read(0, 10))).code).toBe('object_changed');
    expect((await (await storage.open('mutable.bin')).read(0, 10))[0]).toBe(3);

    await fs.rm(file);
    expect((await errorOf(reopened.read(0, 10))).code).toBe('object_changed');
    expect((await errorOf(storage.stat('mutable.bin'))).code).toBe('not_found');
  });

  it('serves many sources through a small handle cache, also after close()', async () => {
    const small = await LocalStorage.create(root, { maxOpenFiles: 2 });
    const keys = ['slide.svs', 'a/b/c.bin', 'a/b.txt', 'top.txt', 'link-in'];
    const sources = await Promise.all(keys.map((k) => small.open(k)));
    for (let round = 0; round < 3; round++) {
      const reads = await Promise.all(sources.map((s) => s.read(0, Math.min(s.size, 8))));
      expect(Buffer.from(reads[0]).equals(slideBytes.subarray(0, 8))).toBe(true);
      expect(Buffer.from(reads[1]).toString()).toBe('a/b/c.bi');
      expect(Buffer.from(reads[4]).toString()).toBe('a/b/c.bi');
      if (round === 1) await small.close();
    }
    await small.close();
  });

  it('answers Cancelled for an aborted signal', async () => {
    const source = await storage.open('slide.svs');
    const controller = new AbortController();
    controller.abort();
    expect((await errorOf(source.read(0, 10, { signal: controller.signal }))).code).toBe('cancelled');
    expect((await errorOf(storage.stat('slide.svs', { signal: controller.signal }))).code).toBe('cancelled');
  });

  it('checks the root in create()', async () => {
    expect((await errorOf(LocalStorage.create(path.join(outer, 'nope')))).code).toBe('config_error');
    expect((await errorOf(LocalStorage.create(path.join(outer, 'x')))).code).toBe('config_error');
  });
});

describe('LocalStorage jail', () => {
  // Escapes answer InvalidId (refused by validateKey) or NotFound (resolved outside the root,
  // indistinguishable from a missing file); never the bytes outside.
  const escapes = [
    '../x',
    '%2e%2e%2fx',
    '%2e%2e/x',
    'a/../../x',
    '/etc/passwd',
    'link-root/etc/passwd',
    'link-root',
    'link-out',
    'a\0b',
    '..\\x',
    'C:/x',
    '',
    'dangling',
    'loop/../x',
  ];
  it.each(escapes)('refuses %j', async (key) => {
    const e = await errorOf(storage.stat(key));
    expect(['invalid_id', 'not_found']).toContain(e.code);
    expect((await errorOf(storage.open(key))).code).toBe(e.code);
  });

  it('answers NotFound for escaping symlinks (not InvalidId: they look like missing files)', async () => {
    expect((await errorOf(storage.stat('link-out'))).code).toBe('not_found');
    expect((await errorOf(storage.stat('link-root/etc/passwd'))).code).toBe('not_found');
    expect(await fs.readFile(path.join(root, 'link-out'), 'utf8')).toBe('secret'); // the link works in fs
  });

  it('answers NotFound for directories and other non-regular files', async () => {
    expect((await errorOf(storage.stat('a'))).code).toBe('not_found');
    expect((await errorOf(storage.stat('a/'))).code).toBe('not_found');
    expect((await errorOf(storage.stat('linkdir-in'))).code).toBe('not_found');
    const hasFifo = await fs.lstat(path.join(root, 'fifo')).then(
      (s) => s.isFIFO(),
      () => false,
    );
    if (hasFifo) expect((await errorOf(storage.open('fifo'))).code).toBe('not_found');
  });

  it('follows symlinks that stay inside the root', async () => {
    const viaLink = await storage.open('link-in');
    expect(Buffer.from(await viaLink.read(0, viaLink.size)).toString()).toBe('a/b/c.bin');
    const viaDirLink = await storage.open('linkdir-in/b/c.bin');
    expect(Buffer.from(await viaDirLink.read(0, viaDirLink.size)).toString()).toBe('a/b/c.bin');
    const viaLoop = await storage.open('loop/top.txt');
    expect(viaLoop.size).toBe('top.txt'.length);
  });
});

describe('LocalStorage list', () => {
  it('lists every visible regular file in byte order across pages, skipping hidden files and escapes', async () => {
    const { keys, pages } = await listAll({});
    expect(pages).toBe(2); // > 1000 keys
    expect(new Set(keys).size).toBe(keys.length);
    const sorted = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect(keys).toEqual(sorted);
    const notMany = keys.filter((k) => !k.startsWith('many/'));
    expect(notMany).toEqual([
      'a/b-c.txt',
      'a/b.txt',
      'a/b/c.bin',
      'a/b0.txt',
      'link-in',
      'linkdir-in/b-c.txt',
      'linkdir-in/b.txt',
      'linkdir-in/b/c.bin',
      'linkdir-in/b0.txt',
      'slide.svs',
      'top.txt',
      'u/z.txt',
      'u/é.txt',
      'u/\uFFFD.txt',
      'u/\u{1F600}.txt',
    ]);
    expect(keys.filter((k) => k.startsWith('many/'))).toHaveLength(MANY);
    // 40 directories deep is past the walk's bound (32), yet the file can still be opened by id.
    expect(keys.some((k) => k.endsWith('deep.txt'))).toBe(false);
    expect((await storage.stat(`${Array.from({ length: 40 }, () => 'd').join('/')}/deep.txt`)).size).toBe(
      `${Array.from({ length: 40 }, () => 'd').join('/')}/deep.txt`.length,
    );
  });

  it('describes objects with size and mtime', async () => {
    const page = await storage.list({ prefix: 'slide' });
    expect(page.objects).toHaveLength(1);
    const [slide] = page.objects as [ObjectInfo];
    expect(slide).toMatchObject({ key: 'slide.svs', size: slideBytes.length });
    expect(slide.lastModified).toBeInstanceOf(Date);
    expect(page.prefixes).toEqual([]);
    expect(page.nextCursor).toBeUndefined();
  });

  it('folds folders with delimiter "/"', async () => {
    const top = await storage.list({ delimiter: '/' });
    expect(top.prefixes).toEqual(['a/', 'd/', 'linkdir-in/', 'many/', 'u/']);
    expect(top.objects.map((o) => o.key)).toEqual(['link-in', 'slide.svs', 'top.txt']);

    const partial = await storage.list({ prefix: 'a/b', delimiter: '/' });
    expect(partial.objects.map((o) => o.key)).toEqual(['a/b-c.txt', 'a/b.txt', 'a/b0.txt']);
    expect(partial.prefixes).toEqual(['a/b/']);

    const inside = await storage.list({ prefix: 'a/b/', delimiter: '/' });
    expect(inside.objects.map((o) => o.key)).toEqual(['a/b/c.bin']);
  });

  it('pages through a prefix with small limits and opaque cursors', async () => {
    const first = await storage.list({ prefix: 'many/f00', limit: 7 });
    expect(first.objects.map((o) => o.key)).toEqual(Array.from({ length: 7 }, (_, i) => `many/f000${i}`));
    expect(first.nextCursor).toMatch(/^[A-Za-z0-9_-]+$/);
    const second = await storage.list({ prefix: 'many/f00', limit: 7, cursor: first.nextCursor });
    expect(second.objects[0].key).toBe('many/f0007');

    const all = await listAll({ prefix: 'many/', limit: 1000 });
    expect(all.pages).toBe(2);
    expect(all.keys).toHaveLength(MANY);

    // One item a page, folders included: the same sequence as one large page.
    const oneByOne = await listAll({ delimiter: '/', limit: 1 });
    const whole = await storage.list({ delimiter: '/' });
    expect(oneByOne.prefixes).toEqual(whole.prefixes);
    expect(oneByOne.keys).toEqual(whole.objects.map((o) => o.key));
  });

  it('returns nothing for absent or hidden prefixes and refuses bad cursors and prefixes', async () => {
    expect(await storage.list({ prefix: 'nope/' })).toEqual({ objects: [], prefixes: [] });
    expect((await storage.list({ prefix: '.git/' })).objects).toEqual([]);
    expect((await storage.list({ prefix: 'link-root/' })).objects).toEqual([]);
    expect((await errorOf(storage.list({ cursor: 'not a cursor!' }))).code).toBe('bad_request');
    expect((await errorOf(storage.list({ prefix: '../' }))).code).toBe('invalid_id');
    expect(events.some((e) => e.kind === 'list' && e.outcome === 'ok')).toBe(true);
  });
});
