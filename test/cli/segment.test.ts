// `medstream segment` and `medstream eval` as users run them: a NIfTI volume segmented and scored
// against the fixture truth, a batch CSV with a summary, and every kind of bad input refused with
// exit code 2 and nothing written (no mask, no summary, no temporary file left behind).
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import { EVAL_FLAGS, runEval } from '../../src/cli/eval.js';
import { parseBatch, parseCsv } from '../../src/cli/segment-batch.js';
import { SEGMENT_FLAGS, runSegment } from '../../src/cli/segment.js';
import { readNiftiVolume } from '../../src/volumes/nifti.js';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';
import { python } from '../volumes/python.js';

const CT = fixture('volumes/nifti/example_ct_sm.nii.gz');
const SEG = fixture('volumes/nifti/example_seg.nii.gz');
const SEG_DICOM = fixture('volumes/nifti/example_seg_dicom.nii.gz');
const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-segment-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Runs a command in-process; returns its exit code and what it printed. */
async function run(
  command: 'segment' | 'eval',
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  try {
    const parsed = parseConfig(args, {}, command === 'segment' ? SEGMENT_FLAGS : EVAL_FLAGS);
    const commandArgs = { values: parsed.commandValues, positionals: parsed.positionals };
    const code =
      command === 'segment'
        ? await runSegment(parsed.config, commandArgs)
        : await runEval(parsed.config, commandArgs);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

function emptyDir(name: string): string {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

describe('medstream segment + eval', () => {
  it('segments the liver of example_ct_sm and scores it against the truth (child process)', async () => {
    const dir = emptyDir('single');
    const mask = path.join(dir, 'liver.nii.gz');
    const seg = await runMedstream([
      'segment',
      '--input',
      CT,
      '--slice',
      '14',
      '--box',
      '45,27,104,85',
      '--label',
      '5',
      '--out',
      mask,
      '--json',
    ]);
    expect(seg.stderr).not.toMatch(/unexpected/);
    expect(seg.code).toBe(0);
    const summary = JSON.parse(seg.stdout) as {
      voxels: number;
      keySlice: number;
      engine: string;
      window: string;
    };
    expect(summary).toMatchObject({ keySlice: 14, engine: 'classical', window: '-160,240' });
    const written = readNiftiVolume(readFileSync(mask));
    expect(written.dims).toEqual([122, 101, 30]);
    const ev = await runMedstream(['eval', '--pred', mask, '--truth', SEG, '--labels', '5', '--json']);
    expect(ev.code).toBe(0);
    const scores = JSON.parse(ev.stdout) as {
      labels: { label: number; dice: number; predVoxels: number }[];
      meanDice: number;
    };
    expect(scores.labels[0].label).toBe(5);
    expect(scores.labels[0].predVoxels).toBe(summary.voxels);
    expect(scores.labels[0].dice).toBeGreaterThan(0.85);
    expect(readdirSync(dir)).toEqual(['liver.nii.gz']);
  });

  it('refuses masks of different geometry in eval (child process, exit 2)', async () => {
    const ev = await runMedstream(['eval', '--pred', SEG, '--truth', SEG_DICOM]);
    expect(ev.code).toBe(2);
    expect(ev.stderr).toMatch(/122x101x30 but truth is 512x512x20: the masks have different geometry/);
    expect(ev.stderr).not.toMatch(/at .*\.ts/);
  });

  it('refuses a shifted affine of the same dimensions', async () => {
    const shifted = path.join(tmp, 'shifted.nii.gz');
    python(
      `import sys, nibabel as nib, numpy as np
img = nib.load(sys.argv[1]); aff = img.affine.copy(); aff[0, 3] += 1.5
nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff, img.header), sys.argv[2]); print('{}')`,
      [SEG, shifted],
    );
    const r = await run('eval', ['--pred', shifted, '--truth', SEG]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/different affines/);
  });

  it('batch: one mask per input (lesions combined by label) and summary.csv', async () => {
    const dir = emptyDir('batch');
    const csv = path.join(dir, 'cases.csv');
    writeFileSync(
      csv,
      `input,slice,box,window,label\n${CT},14,"45,27,104,85",,5\n${CT},15,30;30;55;70,-160;240,1\n`,
    );
    const out = path.join(dir, 'out');
    const r = await run('segment', ['--batch', csv, '--out-dir', out]);
    expect(r.code).toBe(0);
    // Progress lines (stderr is not a terminal here): one per lesion.
    expect(r.stderr).toMatch(/\[1\/1\] example_ct_sm.nii.gz: line 3: \d+ voxels/);
    expect(readdirSync(out).sort()).toEqual(['example_ct_sm_mask.nii.gz', 'summary.csv']);
    const lines = readFileSync(path.join(out, 'summary.csv'), 'utf8').trim().split('\n');
    expect(lines[0]).toBe(
      'file,key_slice,box,window,engine,label,voxels,volume_ml,slices,seconds,stopped_forward,stopped_backward,mask',
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain(',14,"45,27,104,85","-160,240",classical,5,');
    const mask = readNiftiVolume(readFileSync(path.join(out, 'example_ct_sm_mask.nii.gz')));
    const values = new Set(mask.data);
    expect([...values].sort()).toEqual([0, 1, 5]);
  });

  it('parses CSV quoting and reports the bad line', () => {
    expect(parseCsv('a,"b,c",d\r\n"x""y",,\n')).toEqual([
      ['a', 'b,c', 'd'],
      ['x"y', '', ''],
    ]);
    expect(() => parseBatch('input,slice,box\nct.nii.gz,3,"1,2,3"\n', undefined)).toThrow(
      /line 2: box "1,2,3" is not four integers/,
    );
    expect(() => parseBatch('input,box\nct.nii.gz,"1,2,3,4"\n', undefined)).toThrow(/no "slice" column/);
  });
});

describe('bad input: exit 2, nothing written', () => {
  const cases: [string, string[], RegExp][] = [
    [
      'box outside the image',
      ['--slice', '14', '--box', '200,200,250,250'],
      /lies outside the 122x101 slice/,
    ],
    ['empty box', ['--slice', '14', '--box', '40,40,40,60'], /is empty/],
    ['malformed box', ['--slice', '14', '--box', '1,2,3'], /not four integers/],
    ['slice out of range', ['--slice', '30', '--box', '45,27,104,85'], /slice 30 is out of range 0..29/],
    ['negative slice', ['--slice=-1', '--box', '45,27,104,85'], /not a non-negative integer/],
    ['bad window', ['--slice', '14', '--box', '45,27,104,85', '--window', '240,-160'], /lo < hi/],
    [
      'unknown engine',
      ['--slice', '14', '--box', '45,27,104,85', '--engine', 'magic'],
      /unknown engine "magic"/,
    ],
  ];
  for (const [name, args, message] of cases) {
    it(name, async () => {
      const dir = emptyDir(`bad-${name.replace(/\s+/g, '-')}`);
      const r = await run('segment', ['--input', CT, '--out', path.join(dir, 'm.nii.gz'), ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(readdirSync(dir)).toEqual([]);
    });
  }

  it('4D, 2D and NaN inputs, a missing input', async () => {
    const gen = emptyDir('generated');
    python(
      `import sys, numpy as np, nibabel as nib
d = sys.argv[1]
nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.int16), np.eye(4)), d + '/4d.nii.gz')
nib.save(nib.Nifti1Image(np.zeros((8, 8), np.int16), np.eye(4)), d + '/2d.nii.gz')
a = np.zeros((8, 8, 4), np.float32); a[3, 4, 2] = np.nan
nib.save(nib.Nifti1Image(a, np.eye(4)), d + '/nan.nii.gz'); print('{}')`,
      [gen],
    );
    const dicomDir = emptyDir('one-dicom');
    const first = readdirSync(fixture('volumes/ct-dicom-j2k'))[0];
    copyFileSync(path.join(fixture('volumes/ct-dicom-j2k'), first), path.join(dicomDir, 'one.dcm'));
    const out = emptyDir('bad-inputs');
    const expectations: [string, RegExp][] = [
      [path.join(gen, '4d.nii.gz'), /4D data .*only 3D volumes/],
      [path.join(gen, '2d.nii.gz'), /input is 2D/],
      [path.join(gen, 'nan.nii.gz'), /non-finite voxel \(NaN\) at \(3, 4, 2\)/],
      [dicomDir, /input is 2D \(512x512x1\)/],
      [path.join(gen, 'missing.nii.gz'), /does not exist/],
    ];
    for (const [input, message] of expectations) {
      const r = await run('segment', [
        '--input',
        input,
        '--slice',
        '0',
        '--box',
        '1,1,5,5',
        '--out',
        path.join(out, 'm.nii.gz'),
      ]);
      expect(r.code, input).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(readdirSync(out)).toEqual([]);
  });

  it('a batch with one bad row writes nothing at all', async () => {
    const dir = emptyDir('bad-batch');
    const csv = path.join(dir, 'cases.csv');
    writeFileSync(csv, `input,slice,box\n${CT},14,"45,27,104,85"\n${CT},14,"300,300,310,310"\n`);
    const out = path.join(dir, 'out');
    const r = await run('segment', ['--batch', csv, '--out-dir', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/batch CSV line 3: box 300,300,310,310 lies outside/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});

describe('--seg', () => {
  it('refuses a NIfTI input (no instances to reference) before writing anything', async () => {
    const dir = emptyDir('seg-nifti');
    const r = await run('segment', [
      '--input',
      CT,
      '--slice',
      '14',
      '--box',
      '45,27,104,85',
      '--out',
      path.join(dir, 'm.nii.gz'),
      '--seg',
      path.join(dir, 'm.dcm'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--seg needs a DICOM series/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('writes mask and SEG for a DICOM series with UIDs', async () => {
    const series = emptyDir('seg-series');
    python(
      `import sys, glob, pydicom
from pydicom.uid import generate_uid
study, ser = generate_uid(), generate_uid()
for n, f in enumerate(sorted(glob.glob(sys.argv[1] + '/*'))[7:13]):
    d = pydicom.dcmread(f)
    d.StudyInstanceUID, d.SeriesInstanceUID = study, ser
    d.SOPClassUID, d.SOPInstanceUID = d.file_meta.MediaStorageSOPClassUID, d.file_meta.MediaStorageSOPInstanceUID
    d.save_as(sys.argv[2] + '/ct%d.dcm' % n)
print('{}')`,
      [fixture('volumes/ct-dicom-j2k'), series],
    );
    const dir = emptyDir('seg-out');
    const r = await run('segment', [
      '--input',
      series,
      '--slice',
      '3',
      '--box',
      '340,190,450,330',
      '--out',
      path.join(dir, 'spleen.nii.gz'),
      '--seg',
      path.join(dir, 'spleen.dcm'),
    ]);
    expect(r.stderr).not.toMatch(/medstream segment:/);
    expect(r.code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['spleen.dcm', 'spleen.nii.gz']);
    const seg = python<{ frames: number; voxels: number }>(
      `import sys, json, pydicom
s = pydicom.dcmread(sys.argv[1]); print(json.dumps({'frames': int(s.NumberOfFrames), 'voxels': int(s.pixel_array.sum())}))`,
      [path.join(dir, 'spleen.dcm')],
    );
    const mask = readNiftiVolume(readFileSync(path.join(dir, 'spleen.nii.gz')));
    let voxels = 0;
    for (const x of mask.data) voxels += x;
    expect(seg.voxels).toBe(voxels);
    expect(seg.frames).toBeGreaterThan(0);
    expect(seg.frames).toBeLessThanOrEqual(6);
  });

  it('--engine sam exits cleanly when a pass stops early (no encoder killed mid-run)', async () => {
    const dir = emptyDir('sam-exit');
    python(
      `import sys, numpy as np, nibabel as nib
z, y, x = np.meshgrid(np.arange(8), np.arange(48), np.arange(48), indexing='ij')
inside = ((x - 22) / 11.0) ** 2 + ((y - 24) / 8.0) ** 2 + ((z - 4) / 1.6) ** 2 <= 1
vol = np.where(inside, 120, -20).astype(np.int16).transpose(2, 1, 0)
nib.save(nib.Nifti1Image(vol, np.diag([1.0, 1.0, 2.0, 1.0])), sys.argv[1]); print('{}')`,
      [path.join(dir, 'lesion.nii.gz')],
    );
    const r = await runMedstream(
      [
        'segment',
        '--engine',
        'sam',
        '--input',
        path.join(dir, 'lesion.nii.gz'),
        '--slice',
        '4',
        '--box',
        '9,14,35,34',
        '--out',
        path.join(dir, 'm.nii.gz'),
        '--json',
      ],
      { timeoutMs: 120_000 },
    );
    expect(r.stderr).not.toMatch(/Napi|terminate/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { engine: string; slices: string; stoppedForward: string };
    expect(summary.engine).toBe('sam');
    expect(summary.slices).toBe('3-5');
    expect(summary.stoppedForward).toBe('vanished@6');
  }, 120_000);
});
