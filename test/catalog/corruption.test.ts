// The indexer's corruption suite: one scan over a directory of broken objects generated from the
// real fixtures (truncated at many points, garbage after the preamble, absurd element lengths,
// endlessly nested sequences, a dcmtk-deflated file and a deflate bomb, mislabelled big endian, byte flips in
// the header, non-DICOM files, zero bytes) beside intact ones. Every object ends as indexed, as
// "other" (not DICOM) or as a recorded error with a typed reason — never an internal error, a
// hang or a stop — and the intact objects are indexed as if they were alone.

import { execFile } from 'node:child_process';
import { deflateRawSync } from 'node:zlib';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalog } from '../../src/catalog/catalog.js';
import { Indexer, type IndexSummary } from '../../src/catalog/indexer.js';
import { parseDicomHeader } from '../../src/dicom/parser.js';
import { Tag, TransferSyntax, tag } from '../../src/dicom/tags.js';
import { LocalStorage } from '../../src/storage/local.js';
import { random } from '../support/corrupt.js';
import { writeDicom, wsiInstance, type ElementSpec } from '../support/dicom-writer.js';
import { BytesSource } from '../support/file-source.js';
import { fixture } from '../support/fixtures.js';

const run = promisify(execFile);

type Outcome = 'indexed' | 'other' | 'error';

/** What an object must end as: one outcome, or any of several (with the reason's pattern). */
interface Expected {
  outcomes: Outcome[];
  reason?: RegExp;
}

const TRUNCATED = /^corrupt_file: .*(truncated|past the end|extends past)/;

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}
const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** A small valid explicit-VR file whose data set is `body` (raw bytes) instead of elements. */
function withBody(
  body: Uint8Array,
  transferSyntax: string = TransferSyntax.ExplicitVrLittleEndian,
): Uint8Array {
  return concat(writeDicom({ transferSyntax, elements: [] }), body);
}

/** An element header, explicit VR little endian (long form for OB/SQ/UT/UN/...). */
function rawHeader(t: number, vr: string, length: number): Uint8Array {
  const head = new Uint8Array(4);
  new DataView(head.buffer).setUint16(0, t >>> 16, true);
  new DataView(head.buffer).setUint16(2, t & 0xffff, true);
  if (['OB', 'OW', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OF', 'OL', 'OV'].includes(vr)) {
    return concat(head, new TextEncoder().encode(vr), new Uint8Array(2), u32(length));
  }
  const len = new Uint8Array(2);
  new DataView(len.buffer).setUint16(0, length, true);
  return concat(head, new TextEncoder().encode(vr), len);
}

/** A sequence nested `depth` deep (each item holds the next sequence). */
function nested(depth: number, undefinedLength: boolean): ElementSpec {
  let inner: ElementSpec = { tag: Tag.PatientName, vr: 'PN', value: 'Deep^Down' };
  for (let i = 0; i < depth; i++) {
    inner = { tag: tag(0x0008, 0x1115), vr: 'SQ', items: [[inner]], undefinedLength };
  }
  return inner;
}

const smallInstance = (sop: string) =>
  wsiInstance({
    transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
    width: 4,
    height: 4,
    tileWidth: 4,
    tileHeight: 4,
    frames: [new Uint8Array(48)],
    sopInstanceUid: sop,
    seriesUid: '1.2.826.0.1.3680043.10.543.99.1',
  });

describe('indexer corruption suite', () => {
  let root: string;
  const expected = new Map<string, Expected>();
  let summary: IndexSummary;
  let catalog: Catalog;
  let intact: string[];

  const add = async (key: string, bytes: Uint8Array, expect: Expected) => {
    await mkdir(path.dirname(path.join(root, key)), { recursive: true });
    await writeFile(path.join(root, key), bytes);
    expected.set(key, expect);
  };

  beforeAll(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'medstream-corrupt-'));
    const ctDir = fixture('volumes/ct-dicom-j2k');
    const ctName = (await readdir(ctDir)).sort()[0];
    const ct = new Uint8Array(await readFile(path.join(ctDir, ctName)));
    const wsi = new Uint8Array(await readFile(fixture('wsi/openslide/boxes_0.dcm')));

    // Intact objects, indexed whatever surrounds them.
    intact = ['intact/ct.dcm', 'intact/boxes_0.dcm', 'intact/boxes_1.dcm'];
    await add('intact/ct.dcm', ct, { outcomes: ['indexed'] });
    await add('intact/boxes_0.dcm', wsi, { outcomes: ['indexed'] });
    await copyFile(fixture('wsi/openslide/boxes_1.dcm'), path.join(root, 'intact/boxes_1.dcm'));
    expected.set('intact/boxes_1.dcm', { outcomes: ['indexed'] });

    // Truncations: before the DICM prefix the object is not DICOM; inside the header an error
    // (or, cut exactly between two elements, an instance without pixel data); once the pixel
    // data's first item is complete, an instance.
    for (const [name, bytes] of [
      ['ct', ct],
      ['wsi', wsi],
    ] as const) {
      const header = await parseDicomHeader(new BytesSource(bytes, name));
      const pixelStart = header.pixelData!.firstFragmentOffset!;
      const points = new Set([0, 1, 64, 127, 128, 131, 132, 133, 135, 136, 139, 140, 144, 150, 160, 200]);
      for (let t = 200; t < pixelStart; t += Math.ceil(pixelStart / 40)) points.add(t);
      for (const t of [pixelStart - 9, pixelStart - 8, pixelStart - 1, pixelStart, pixelStart + 100])
        points.add(t);
      points.add(bytes.length - 1);
      for (const t of points) {
        const key = `truncated/${name}-${String(t).padStart(6, '0')}.dcm`;
        const outcome: Expected =
          t < 132
            ? { outcomes: ['error'], reason: /^unsupported_format: named like DICOM/ }
            : t < pixelStart
              ? { outcomes: ['error', 'indexed'], reason: /^corrupt_file: / }
              : { outcomes: ['indexed'] };
        await add(key, bytes.slice(0, t), outcome);
      }
    }

    // Garbage after the preamble and DICM, and after a valid file meta group.
    const rng = random(1414);
    const noise = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rng() * 256));
    const preamble = concat(new Uint8Array(128), new TextEncoder().encode('DICM'));
    for (let i = 0; i < 8; i++) {
      await add(`garbage/after-preamble-${i}.dcm`, concat(preamble, noise(200 + i * 500)), {
        outcomes: ['error'],
        reason: /^corrupt_file: /,
      });
      await add(`garbage/after-meta-${i}.dcm`, withBody(noise(300 + i * 700)), {
        outcomes: ['error', 'indexed'],
      });
    }
    await add('garbage/dicm-then-zeros.dcm', concat(preamble, new Uint8Array(4096)), {
      outcomes: ['error'],
      reason: /^corrupt_file: /,
    });
    // Named .dcm but no DICM: reported (the name promised DICOM), not silently skipped.
    await add('garbage/no-dicm.dcm', concat(new Uint8Array(128), noise(1000)), {
      outcomes: ['error'],
      reason: /^unsupported_format: named like DICOM/,
    });

    // Absurd lengths.
    const absurd: [string, Uint8Array, RegExp][] = [
      [
        'ut-4gib',
        concat(rawHeader(tag(0x0010, 0x4000), 'UT', 0xfffffff0), noise(64)),
        /extends past the end/,
      ],
      [
        'ob-2gib',
        concat(rawHeader(tag(0x0009, 0x1010), 'OB', 0x7fffffff), noise(64)),
        /extends past the end/,
      ],
      ['lo-64k', concat(rawHeader(tag(0x0010, 0x0010), 'LO', 0xffff), noise(100)), /extends past the end/],
      [
        'ut-undefined',
        concat(rawHeader(tag(0x0010, 0x4000), 'UT', 0xffffffff), noise(64)),
        /undefined length/,
      ],
      [
        'sq-4gib',
        concat(rawHeader(tag(0x0008, 0x1115), 'SQ', 0xfffffff0), noise(64)),
        /sequence past the end/,
      ],
      [
        'item-4gib',
        concat(
          rawHeader(tag(0x0008, 0x1115), 'SQ', 0xffffffff),
          Uint8Array.of(0xfe, 0xff, 0x00, 0xe0),
          u32(0xfffffff0),
          noise(64),
        ),
        /item past the end/,
      ],
    ];
    for (const [name, body, reason] of absurd) {
      await add(`absurd/${name}.dcm`, withBody(body), { outcomes: ['error'], reason });
    }
    // A file meta element claiming 4 GiB.
    const meta = writeDicom({ transferSyntax: TransferSyntax.ExplicitVrLittleEndian, elements: [] });
    const badMeta = concat(
      meta.slice(0, 132),
      rawHeader(tag(0x0002, 0x0001), 'OB', 0xfffffff0),
      meta.slice(132 + 12 + 2),
    );
    await add('absurd/meta-4gib.dcm', badMeta, { outcomes: ['error'], reason: /corrupt_file: / });

    // Sequences nested past the parser's limit (16), defined and undefined lengths, both VRs.
    for (const [ts, tsName] of [
      [TransferSyntax.ExplicitVrLittleEndian, 'explicit'],
      [TransferSyntax.ImplicitVrLittleEndian, 'implicit'],
    ] as const) {
      for (const undefinedLength of [true, false]) {
        const deep = writeDicom({ transferSyntax: ts, elements: [nested(200, undefinedLength)] });
        await add(`nested/${tsName}-${undefinedLength ? 'undefined' : 'defined'}-200.dcm`, deep, {
          outcomes: ['error'],
          reason: /nested deeper than 16/,
        });
        const ok = writeDicom({ transferSyntax: ts, elements: [nested(8, undefinedLength)] });
        await add(`nested/${tsName}-${undefinedLength ? 'undefined' : 'defined'}-8.dcm`, ok, {
          outcomes: ['indexed'],
        });
      }
    }
    // An endless run of items that never closes (undefined-length sequence, no delimiter).
    const items = Array.from({ length: 2000 }, () => concat(Uint8Array.of(0xfe, 0xff, 0x00, 0xe0), u32(0)));
    await add(
      'nested/unterminated.dcm',
      withBody(concat(rawHeader(tag(0x0008, 0x1115), 'SQ', 0xffffffff), ...items)),
      { outcomes: ['error'], reason: TRUNCATED },
    );

    // Deflated data sets: one from dcmtk is indexed (inflated as far as its header); one written
    // here whose data set inflates to 256 MiB of zeros (a deflate bomb) is stopped at the header limit.
    const plain = path.join(root, '..', `${path.basename(root)}-plain.dcm`);
    await writeFile(plain, writeDicom(smallInstance('1.2.826.0.1.3680043.10.543.99.1.1')));
    await mkdir(path.join(root, 'deflated'), { recursive: true });
    await run('dcmconv', ['+td', plain, path.join(root, 'deflated/dcmtk.dcm')]);
    await rm(plain);
    expected.set('deflated/dcmtk.dcm', { outcomes: ['indexed'] });
    const bombMeta = writeDicom({
      transferSyntax: TransferSyntax.DeflatedExplicitVrLittleEndian,
      elements: [],
    });
    const bomb = deflateRawSync(Buffer.alloc(256 * 1024 * 1024), { level: 9 });
    await add('deflated/bomb.dcm', concat(bombMeta, bomb), {
      outcomes: ['error'],
      reason: /^unsupported_format: .*deflated/,
    });
    await add(
      'other-syntax/big-endian.dcm',
      // A little-endian data set labelled big endian: read big endian, its lengths lie.
      writeDicom({ ...smallInstance('1.2.3'), transferSyntax: TransferSyntax.ExplicitVrBigEndian }),
      { outcomes: ['error'], reason: /^corrupt_file: / },
    );

    // Byte flips anywhere in the WSI header (seeded): whatever happens is indexed or typed.
    const headerEnd = (await parseDicomHeader(new BytesSource(wsi, 'wsi'))).pixelData!.elementOffset;
    for (let i = 0; i < 40; i++) {
      const copy = wsi.slice();
      for (let f = 0; f < 4; f++) copy[132 + Math.floor(rng() * (headerEnd - 132))] = Math.floor(rng() * 256);
      await add(`flipped/wsi-${String(i).padStart(2, '0')}.dcm`, copy, { outcomes: ['indexed', 'error'] });
    }

    // Not DICOM at all.
    await add('not-dicom/empty.dcm', new Uint8Array(0), {
      outcomes: ['error'],
      reason: /^unsupported_format: /,
    });
    await add('not-dicom/empty.bin', new Uint8Array(0), { outcomes: ['other'] });
    await add('not-dicom/readme.txt', new TextEncoder().encode('hello\n'.repeat(100)), {
      outcomes: ['other'],
    });
    await add('not-dicom/boxes.tiff', new Uint8Array(await readFile(fixture('wsi/openslide/boxes.tiff'))), {
      outcomes: ['other'],
    });
    await add('not-dicom/small.svs', new Uint8Array(await readFile(fixture('wsi/openslide/small.svs'))), {
      outcomes: ['other'],
    });

    const storage = await LocalStorage.create(root);
    catalog = await Catalog.open(':memory:');
    summary = await new Indexer(storage, catalog).scan({ objectTimeoutMs: 10_000 });
    await storage.close();
  });
  afterAll(async () => {
    await catalog?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('the scan completes and accounts for every object', () => {
    expect(summary.complete).toBe(true);
    expect(summary.listed).toBe(expected.size);
    expect(summary.indexed + summary.other + summary.failed).toBe(expected.size);
    expect(summary.failed).toBeGreaterThan(50);
  });

  it('every object ends as expected, errors with a typed reason', async () => {
    const rows = await catalog.sql.all<{ key: string; kind: string; reason: string | null }>(
      'SELECT key, kind, reason FROM objects ORDER BY key',
    );
    expect(rows.map((r) => r.key).sort()).toEqual([...expected.keys()].sort());
    const outcome = (kind: string): Outcome => (kind === 'dicom' ? 'indexed' : (kind as Outcome));
    for (const row of rows) {
      const want = expected.get(row.key)!;
      expect(want.outcomes, `${row.key}: ${row.kind} ${row.reason}`).toContain(outcome(row.kind));
      if (row.kind === 'error') {
        // A typed error (the parser's), never an unexpected exception or a timeout.
        expect(row.reason, row.key).toMatch(/^(corrupt_file|unsupported_format): /);
        if (want.reason) expect(row.reason, row.key).toMatch(want.reason);
      }
    }
    const problems = await catalog.problems();
    expect(problems.filter((p) => p.kind === 'error').map((p) => p.key)).toEqual(
      rows.filter((r) => r.kind === 'error').map((r) => r.key),
    );
  });

  it('truncated headers cut between elements index without pixel data, never with a wrong one', async () => {
    const rows = await catalog.sql.all<{ key: string; pixel_data: string | null; size: number }>(
      "SELECT key, pixel_data, size FROM instances WHERE key LIKE 'truncated/%'",
    );
    for (const row of rows) {
      if (row.pixel_data === null) continue;
      const pixel = JSON.parse(row.pixel_data) as { firstFragmentOffset: number };
      expect(pixel.firstFragmentOffset, row.key).toBeLessThanOrEqual(row.size);
    }
    const errors = await catalog.sql.all<{ n: number }>(
      "SELECT COUNT(*) AS n FROM objects WHERE key LIKE 'truncated/%' AND kind = 'error'",
    );
    expect(Number(errors[0].n)).toBeGreaterThan(40);
  });

  it('the intact objects are indexed as if they were alone', async () => {
    const alone = await Catalog.open(':memory:');
    try {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-intact-'));
      for (const key of intact) {
        await mkdir(path.join(dir, 'intact'), { recursive: true });
        await copyFile(path.join(root, key), path.join(dir, key));
      }
      const storage = await LocalStorage.create(dir);
      await new Indexer(storage, alone).scan();
      await storage.close();
      await rm(dir, { recursive: true, force: true });
      for (const key of intact) {
        const [mine] = await catalog.sql.all<{ sop_uid: string; json: string }>(
          'SELECT sop_uid, json FROM instances WHERE key = ?',
          [key],
        );
        const [theirs] = await alone.sql.all<{ sop_uid: string; json: string }>(
          'SELECT sop_uid, json FROM instances WHERE key = ?',
          [key],
        );
        // Derived Study / Series UIDs are namespaced by the storage's location (another directory
        // here); everything else is the same.
        const attributes = (row: { json: string }) => {
          const json = JSON.parse(row.json) as Record<string, unknown>;
          if (key.startsWith('intact/ct')) for (const t of ['0020000D', '0020000E']) delete json[t];
          return json;
        };
        expect(mine.sop_uid, key).toBe(theirs.sop_uid);
        expect(attributes(mine), key).toEqual(attributes(theirs));
      }
    } finally {
      await alone.close();
    }
  });
});
