// The slide registry's lazy opens (tiles/slide-registry.ts): `getBase` answers level 0 of a
// slide opened after its first directory, `get` reads the rest once and keeps the whole slide
// (level 0 the very grid served before), and a walk that every caller gave up is not left
// behind: the next caller opens the slide again instead of inheriting the cancellation.
// Storage is a real directory; reads go through a source that adds latency (as S3 has), so
// that a caller can leave while the walk is in flight.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cancelled } from '../../src/errors.js';
import { openSlide, openSlideLazily } from '../../src/formats/detect.js';
import { LocalStorage } from '../../src/storage/local.js';
import type { ByteSource } from '../../src/storage/types.js';
import { SlideRegistry } from '../../src/tiles/slide-registry.js';
import { fixture } from '../support/fixtures.js';

let dir: string;
let storage: LocalStorage;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-registry-'));
  await copyFile(fixture('wsi/generated/pyramid-jpeg.tif'), path.join(dir, 'slide.tif'));
  storage = await LocalStorage.create(dir);
});

afterAll(async () => {
  await storage?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The object with `ms` of latency before each read (a cancelled wait rejects). */
function slow(source: ByteSource, ms: number): ByteSource {
  return {
    key: source.key,
    size: source.size,
    identity: source.identity,
    async read(offset, length, options = {}) {
      await sleep(ms, undefined, { signal: options.signal }).catch(() => {
        throw new Cancelled();
      });
      return source.read(offset, length, options);
    },
  };
}

function registry(latencyMs: number): SlideRegistry {
  return new SlideRegistry({
    storage,
    wrap: (source) => slow(source, latencyMs),
    open: (source, signal) => openSlide(source, { signal }),
    openLazily: (source, signal) => openSlideLazily(source, { signal }),
    maxSlides: 8,
    revalidateMs: 60_000,
  });
}

describe('SlideRegistry lazy opens', () => {
  it('getBase: level 0 alone; get: the whole slide once, the same level-0 grid, one open', async () => {
    const slides = registry(0);
    const base = await slides.getBase('slide.tif');
    expect(base.slide.levels).toHaveLength(1);
    const whole = await slides.get('slide.tif');
    expect(whole.slide.levels.length).toBeGreaterThan(1);
    expect(whole.slide.levels[0].grid).toBe(base.slide.levels[0].grid);
    expect(whole.identity).toBe(base.identity);
    // Both kinds of caller now get the whole slide, without opening again.
    expect((await slides.getBase('slide.tif')).slide).toBe(whole.slide);
    expect(slides.stats().opens).toBe(1);
  });

  it('a walk its only caller gave up: the next caller opens the slide again and gets it whole', async () => {
    const slides = registry(30);
    await slides.getBase('slide.tif');
    const leaving = new AbortController();
    const first = slides.get('slide.tif', leaving.signal);
    await sleep(10); // the walk's first read is waiting
    leaving.abort();
    await expect(first).rejects.toBeInstanceOf(Cancelled);
    const whole = await slides.get('slide.tif');
    const eager = await openSlide(await storage.open('slide.tif'));
    expect(whole.slide.levels.map((l) => [l.width, l.height])).toEqual(
      eager.levels.map((l) => [l.width, l.height]),
    );
  });
});
