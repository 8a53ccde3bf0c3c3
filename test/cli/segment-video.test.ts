// `medstream segment --video`: a generated cine (a bright disk moving 2 px a frame that leaves the
// picture after frame 6) as a folder of PNG frames, a greyscale multi-frame DICOM and an RGB one;
// a box or a mask on frame 0 -> one DAVIS-palette PNG per frame (indexed, object id as the pixel
// value) that follows the disk and is empty once it is gone; bad requests exit 2, nothing written.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import { SEGMENT_FLAGS, runSegment } from '../../src/cli/segment.js';
import { Tag, TransferSyntax } from '../../src/dicom/tags.js';
import { davisPalette, encodeDavisPng } from '../../src/segment/davis-png.js';
import { writeDicomFile } from '../support/dicom-writer.js';
import { random } from '../segment/phantom.js';
import { python } from '../volumes/python.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-video-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const W = 64;
const H = 48;
const FRAMES = 10;
const VISIBLE = 7; // the disk is in frames 0..6
const inside = (t: number, x: number, y: number) =>
  t < VISIBLE && (x - (20 + 2 * t)) ** 2 + (y - 24) ** 2 <= 81;
const rnd = random(3);
const frames = Array.from({ length: FRAMES }, (_, t) =>
  Uint8Array.from(
    { length: W * H },
    (_, i) => (inside(t, i % W, Math.floor(i / W)) ? 200 : 40) + Math.round(rnd() * 20 - 10),
  ),
);
const truth = (t: number) =>
  Uint8Array.from({ length: W * H }, (_, i) => (inside(t, i % W, Math.floor(i / W)) ? 1 : 0));
const BOX = '10,14,30,34';

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  try {
    const parsed = parseConfig(['--quiet', ...args], {}, SEGMENT_FLAGS);
    const code = await runSegment(parsed.config, {
      values: parsed.commandValues,
      positionals: parsed.positionals,
    });
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** Object ids of a DAVIS PNG: checks it is indexed, maps palette colours back to ids. */
async function readIds(file: string): Promise<Uint8Array> {
  const bytes = readFileSync(file);
  expect(bytes[25]).toBe(3); // IHDR colour type: indexed
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  expect([info.width, info.height]).toEqual([W, H]);
  const palette = davisPalette();
  const byColour = new Map<number, number>();
  for (let id = 255; id >= 0; id--)
    byColour.set((palette[3 * id] << 16) | (palette[3 * id + 1] << 8) | palette[3 * id + 2], id);
  return Uint8Array.from(
    { length: W * H },
    (_, i) => byColour.get((data[3 * i] << 16) | (data[3 * i + 1] << 8) | data[3 * i + 2]) ?? 999,
  );
}

function dice(a: Uint8Array, b: Uint8Array): number {
  let both = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    both += a[i] && b[i] ? 1 : 0;
    sum += (a[i] ? 1 : 0) + (b[i] ? 1 : 0);
  }
  return (2 * both) / sum;
}

async function expectTracked(outDir: string, id: number): Promise<void> {
  const names = readdirSync(outDir).sort();
  expect(names).toEqual(Array.from({ length: FRAMES }, (_, t) => `${String(t).padStart(5, '0')}.png`));
  for (let t = 0; t < FRAMES; t++) {
    const ids = await readIds(path.join(outDir, names[t]));
    expect(ids.every((v) => v === 0 || v === id)).toBe(true);
    if (t < VISIBLE)
      expect(
        dice(
          ids.map((v) => (v === id ? 1 : 0)),
          truth(t),
        ),
      ).toBeGreaterThan(0.9);
    else expect(ids.every((v) => v === 0)).toBe(true);
  }
}

const folder = path.join(tmp, 'frames');
const grey = path.join(tmp, 'cine-grey.dcm');
const rgb = path.join(tmp, 'cine-rgb.dcm');
beforeAll(async () => {
  mkdirSync(folder);
  // Names that sort wrongly as text (frame_10 before frame_2): read in numeric order.
  for (let t = 0; t < FRAMES; t++)
    await sharp(Buffer.from(frames[t]), { raw: { width: W, height: H, channels: 1 } })
      .png()
      .toFile(path.join(folder, `frame_${t + 1}.png`));
  const elements = (samples: number) => [
    { tag: Tag.SopClassUid, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.3.1' },
    { tag: Tag.SopInstanceUid, vr: 'UI', value: `1.2.826.0.1.99.${samples}` },
    { tag: Tag.PatientName, vr: 'PN', value: 'Echo^Test' },
    { tag: Tag.PatientId, vr: 'LO', value: 'US-1' },
    { tag: Tag.StudyInstanceUid, vr: 'UI', value: '1.2.826.0.1.99.10' },
    { tag: Tag.SeriesInstanceUid, vr: 'UI', value: '1.2.826.0.1.99.11' },
    { tag: Tag.SamplesPerPixel, vr: 'US', value: [samples] },
    { tag: Tag.PhotometricInterpretation, vr: 'CS', value: samples === 3 ? 'RGB' : 'MONOCHROME2' },
    ...(samples === 3 ? [{ tag: Tag.PlanarConfiguration, vr: 'US', value: [0] }] : []),
    { tag: Tag.NumberOfFrames, vr: 'IS', value: String(FRAMES) },
    { tag: Tag.Rows, vr: 'US', value: [H] },
    { tag: Tag.Columns, vr: 'US', value: [W] },
    { tag: Tag.BitsAllocated, vr: 'US', value: [8] },
    { tag: Tag.BitsStored, vr: 'US', value: [8] },
    { tag: Tag.HighBit, vr: 'US', value: [7] },
    { tag: Tag.PixelRepresentation, vr: 'US', value: [0] },
  ];
  await writeDicomFile(grey, {
    transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
    elements: elements(1),
    pixel: { kind: 'native', frames },
  });
  // RGB: the grey level in all three channels (luma = grey).
  const rgbFrames = frames.map((f) =>
    Uint8Array.from({ length: f.length * 3 }, (_, i) => f[Math.floor(i / 3)]),
  );
  await writeDicomFile(rgb, {
    transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
    elements: elements(3),
    pixel: { kind: 'native', frames: rgbFrames },
  });
});

describe('medstream segment --video', () => {
  it('DAVIS palette: PASCAL VOC colours, id as the index', async () => {
    const p = davisPalette();
    expect(Array.from(p.subarray(0, 12))).toEqual([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]);
    const png = encodeDavisPng(Uint8Array.from([0, 1, 2, 3]), 2, 2);
    const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect(Array.from(data)).toEqual([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0]);
  });

  it('a folder of frames with a box on frame 0 (classical)', async () => {
    const outDir = path.join(tmp, 'out-folder');
    const r = await run(['segment', '--video', folder, '--box', BOX, '--out-dir', outDir, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      frames: FRAMES,
      framesWithObject: VISIBLE,
      lastFrame: VISIBLE - 1,
    });
    await expectTracked(outDir, 1);
  }, 60_000);

  it('a greyscale cine DICOM with a mask on frame 0, object id 2', async () => {
    const maskFile = path.join(tmp, 'mask0.png');
    await sharp(Buffer.from(truth(0).map((v) => v * 255)), { raw: { width: W, height: H, channels: 1 } })
      .png()
      .toFile(maskFile);
    const outDir = path.join(tmp, 'out-grey');
    const r = await run([
      'segment',
      '--video',
      grey,
      '--mask',
      maskFile,
      '--label',
      '2',
      '--out-dir',
      outDir,
    ]);
    expect(r.code).toBe(0);
    await expectTracked(outDir, 2);
  }, 60_000);

  it('--seg: a multi-frame SEG referencing the cine frames, read back by pydicom', async () => {
    const outDir = path.join(tmp, 'out-seg');
    const seg = path.join(tmp, 'cine-seg.dcm');
    const r = await run(['segment', '--video', grey, '--box', BOX, '--out-dir', outDir, '--seg', seg]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const read = python<{
      frames: number;
      refs: [string, number][];
      dims: number[][];
      sums: number[];
      sop: string;
    }>(
      `
import sys, json, pydicom
ds = pydicom.dcmread(sys.argv[1])
px = ds.pixel_array
refs = [(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID,
         int(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)) for f in ds.PerFrameFunctionalGroupsSequence]
dims = [list(f.FrameContentSequence[0].DimensionIndexValues) for f in ds.PerFrameFunctionalGroupsSequence]
print(json.dumps({'frames': int(ds.NumberOfFrames), 'refs': refs, 'dims': dims,
  'sums': [int(px[i].sum()) for i in range(px.shape[0])], 'sop': ds.SOPClassUID}))
`,
      [seg],
    );
    expect(read.sop).toBe('1.2.840.10008.5.1.4.1.1.66.4');
    expect(read.frames).toBe(VISIBLE);
    expect(read.refs).toEqual(Array.from({ length: VISIBLE }, (_, t) => ['1.2.826.0.1.99.1', t + 1]));
    expect(read.dims).toEqual(Array.from({ length: VISIBLE }, (_, t) => [1, t + 1]));
    for (let t = 0; t < VISIBLE; t++) {
      const ids = await readIds(path.join(outDir, `${String(t).padStart(5, '0')}.png`));
      expect(read.sums[t]).toBe(ids.reduce((a, v) => a + (v ? 1 : 0), 0));
    }
    // Image files carry no instance to reference.
    const refused = await run([
      'segment',
      '--video',
      folder,
      '--box',
      BOX,
      '--out-dir',
      path.join(tmp, 'x'),
      '--seg',
      seg + '2',
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--seg needs a DICOM cine/);
  }, 60_000);

  it('an RGB cine DICOM', async () => {
    const outDir = path.join(tmp, 'out-rgb');
    const r = await run(['segment', '--video', rgb, '--box', BOX, '--out-dir', outDir]);
    expect(r.code).toBe(0);
    await expectTracked(outDir, 1);
  }, 60_000);

  it.each([
    [['--box', BOX, '--slice', '3'], /--video does not take --slice/],
    [[], /exactly one prompt on frame 0/],
    [['--box', BOX, '--mask', 'x.png'], /exactly one prompt on frame 0/],
    [['--box', '100,100,120,120'], /lies outside the 64x48 slice/],
    [['--mask', path.join(tmp, 'nothing.png')], /cannot read the image/],
  ])('refuses %j with exit 2 and writes nothing', async (extra, message) => {
    const outDir = path.join(tmp, `bad-${Math.random().toString(36).slice(2)}`);
    const r = await run(['segment', '--video', folder, ...extra, '--out-dir', outDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(outDir) ? readdirSync(outDir) : []).toEqual([]);
  });

  it('refuses a single-frame DICOM and a missing video', async () => {
    const single = path.join(tmp, 'single.dcm');
    await writeDicomFile(single, {
      transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
      elements: [
        { tag: Tag.SamplesPerPixel, vr: 'US', value: [1] },
        { tag: Tag.Rows, vr: 'US', value: [H] },
        { tag: Tag.Columns, vr: 'US', value: [W] },
        { tag: Tag.BitsAllocated, vr: 'US', value: [8] },
      ],
      pixel: { kind: 'native', frames: [frames[0]] },
    });
    const outDir = path.join(tmp, 'bad-single');
    let r = await run(['segment', '--video', single, '--box', BOX, '--out-dir', outDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a video needs a multi-frame \(cine\) instance/);
    r = await run(['segment', '--video', path.join(tmp, 'nope'), '--box', BOX, '--out-dir', outDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not exist/);
    expect(existsSync(outDir)).toBe(false);
  });
});
