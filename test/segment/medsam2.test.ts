// The `medsam2` engine end to end on tiny generated modules of the SAM2 export layout
// (test/support/sam2-modules.ts): tensor shapes through all seven modules, the memory bank's
// bookkeeping (at most 7 memory frames, the prompted frame always among them, pointers of the
// nearest frames behind), both propagation directions, the state reset between passes, the whole
// pipeline, the CLI (--model-dir and MEDSTREAM_MODEL_DIR), and model folders with wrong names.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../src/cli/segment-engines.js';
import { BadRequest } from '../../src/errors.js';
import type { EngineInput } from '../../src/segment/engine.js';
import { MedSam2Engine } from '../../src/segment/medsam2.js';
import { segmentVolume } from '../../src/segment/pipeline.js';
import { Sam2MemoryBank, sinePositionEncoding } from '../../src/segment/sam2-memory.js';
import { applyWindow } from '../../src/segment/window.js';
import { encodeNiftiMask } from '../../src/volumes/nifti.js';
import { runMedstream } from '../support/cli.js';
import { TINY_SAM2, writeTinySam2 } from '../support/sam2-modules.js';
import { diceOf, phantom } from './phantom.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'medstream-medsam2-'));
const modelDir = writeTinySam2(path.join(tmp, 'model'));
let engine: MedSam2Engine;
beforeAll(async () => {
  engine = await MedSam2Engine.create({ modelDir, threads: 1 });
}, 60_000);
afterAll(async () => {
  await engine?.close();
  rmSync(tmp, { recursive: true, force: true });
});

// 48 x 40 (not square: the resize to 512 x 512 and back is not the identity), 30 slices, a bright
// ellipsoid on slices 4..26.
const { volume, truth } = phantom([48, 40, 30], [{ center: [24, 20, 15], radii: [12, 10, 11.5], hu: 150 }], {
  background: -100,
  noise: 5,
});
const window: [number, number] = [-160, 240];
const plane = 48 * 40;
const box = { x0: 11, y0: 9, x1: 37, y1: 31 };
const KEY = 15;
const input = (): EngineInput => ({
  volume,
  windowed: applyWindow(volume.data, window),
  window,
  intensity: { center: 150, spread: 15, lo: 120, hi: 180 },
  smoothed: () => new Float32Array(plane),
});
const truthSlice = (k: number) => truth.subarray(k * plane, (k + 1) * plane);

describe('medsam2 engine on generated modules', () => {
  it('prompted slice: a mask of the slice size that follows the phantom', async () => {
    const session = await engine.openSession(input());
    const mask = await session.segmentBox(KEY, box);
    expect(mask.length).toBe(plane);
    expect(diceOf(mask, truthSlice(KEY))).toBeGreaterThan(0.85);
    expect(session.bank?.frames()).toEqual({ conditioning: [KEY], tracked: [], withFeatures: [] });
    expect(session.bank?.layout).toMatchObject({ memDim: TINY_SAM2.memDim, hiddenDim: TINY_SAM2.hidden });
    expect(session.bank?.layout.tokens).toBe((TINY_SAM2.size / 16) ** 2);
    await session.close();
  }, 60_000);

  it('forward: at most 7 memory frames, the prompted one kept, pointers of the frames behind', async () => {
    const session = await engine.openSession(input());
    await session.segmentBox(KEY, box);
    let previous: Uint8Array = new Uint8Array(plane);
    for (let k = KEY + 1; k <= KEY + 10; k++) {
      previous = await session.propagate(k, previous, k - 1);
      const attention = session.lastAttention!;
      const behind = Math.min(6, k - KEY - 1);
      // The prompted frame, then the nearest tracked frames behind (t = 1..6).
      expect(attention.memoryFrames).toEqual([KEY, ...Array.from({ length: behind }, (_, t) => k - 1 - t)]);
      expect(attention.memoryFrames.length).toBeLessThanOrEqual(7);
      const pointers = k - KEY; // prompted + every tracked frame so far (< 16)
      expect(attention.pointerFrames).toEqual([
        KEY,
        ...Array.from({ length: pointers - 1 }, (_, t) => k - 1 - t),
      ]);
      expect(attention.pointerDistances).toEqual(
        Array.from({ length: pointers }, (_, t) => (t === 0 ? k - KEY : t)),
      );
      expect(attention.objPtrTokens).toBe(pointers * (TINY_SAM2.hidden / TINY_SAM2.memDim));
      expect(attention.length).toBe(attention.memoryFrames.length * 32 * 32 + attention.objPtrTokens);
      // Spatial memory beyond 6 frames behind is dropped: the bank stays bounded.
      expect(session.bank!.frames().withFeatures.length).toBeLessThanOrEqual(6);
      expect(diceOf(previous, truthSlice(k))).toBeGreaterThan(0.7);
    }
    expect(session.bank!.frames().conditioning).toEqual([KEY]);
    await session.close();
  }, 60_000);

  it('backward: memory frames and pointers come from the slices above', async () => {
    const session = await engine.openSession(input());
    await session.segmentBox(KEY, box);
    let previous: Uint8Array = new Uint8Array(plane);
    for (let k = KEY - 1; k >= KEY - 3; k--) previous = await session.propagate(k, previous, k + 1);
    expect(session.lastAttention!.memoryFrames).toEqual([KEY, KEY - 2, KEY - 1]);
    expect(session.lastAttention!.pointerFrames).toEqual([KEY, KEY - 2, KEY - 1]);
    expect(session.lastAttention!.pointerDistances).toEqual([3, 1, 2]);
    expect(diceOf(previous, truthSlice(KEY - 3))).toBeGreaterThan(0.7);
    await session.close();
  }, 60_000);

  it('reset: the backward pass after a forward pass equals a fresh backward pass', async () => {
    const backward = async (session: Awaited<ReturnType<MedSam2Engine['openSession']>>) => {
      const masks = [await session.segmentBox(KEY, box)];
      for (let k = KEY - 1; k >= KEY - 4; k--)
        masks.push(await session.propagate(k, masks[masks.length - 1], k + 1));
      return masks;
    };
    const used = await engine.openSession(input());
    await used.segmentBox(KEY, box);
    for (let k = KEY + 1; k <= KEY + 4; k++) await used.propagate(k, new Uint8Array(plane), k - 1);
    used.reset();
    expect(used.bank!.frames()).toEqual({ conditioning: [], tracked: [], withFeatures: [] });
    const afterReset = await backward(used);
    expect(used.encoderRuns).toBe(9); // the key slice encoded once, reused after the reset
    const fresh = await engine.openSession(input());
    expect(afterReset).toEqual(await backward(fresh));
    await used.close();
    await fresh.close();
  }, 60_000);

  it('pipeline: both passes, the object score ends them where the phantom ends', async () => {
    const result = await segmentVolume(volume, { slice: KEY, box, window }, engine);
    expect(diceOf(result.mask, truth)).toBeGreaterThan(0.8);
    expect(result.slices![0]).toBeGreaterThanOrEqual(3);
    expect(result.slices![1]).toBeLessThanOrEqual(27);
    expect(result.stopped.forward.reason).not.toBe('end-of-volume');
    expect(result.stopped.backward.reason).not.toBe('end-of-volume');
  }, 120_000);
});

describe('medsam2 memory bank', () => {
  it('drops spatial memory 6 frames behind and pointers 15 behind', () => {
    const bank = new Sam2MemoryBank({ memDim: 2, hiddenDim: 4, tokens: 3 });
    const entry = (v: number) => ({
      features: new Float32Array(6).fill(v),
      position: new Float32Array(6),
      pointer: new Float32Array(4).fill(v),
    });
    bank.addConditioning(0, entry(0));
    for (let k = 1; k <= 20; k++) bank.addTracked(k, entry(k), 1);
    const frames = bank.frames();
    expect(frames.conditioning).toEqual([0]);
    expect(frames.withFeatures).toEqual([15, 16, 17, 18, 19, 20]);
    expect(frames.tracked).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    const inputs = bank.attentionInputs(21, 1);
    expect(inputs.memoryFrames).toEqual([0, 20, 19, 18, 17, 16, 15]);
    expect(inputs.pointerFrames.length).toBe(16);
    // Sequence-first layout: token s of frame 20 holds its features, channel after channel.
    expect(Array.from(inputs.memory.subarray(3 * 2, 3 * 2 + 2))).toEqual([20, 20]);
    expect(inputs.length).toBe(7 * 3 + 16 * 2);
  });

  it('sine encodings as sam2 get_1d_sine_pe', () => {
    const pe = sinePositionEncoding([0, 0.5], 4);
    expect(Array.from(pe.subarray(0, 4))).toEqual([0, 0, 1, 1]);
    // dim_t = 10000^(2*(i//2)/2) = [1, 1]: sin(0.5), sin(0.5), cos(0.5), cos(0.5)
    expect(pe[4]).toBeCloseTo(Math.sin(0.5), 6);
    expect(pe[7]).toBeCloseTo(Math.cos(0.5), 6);
  });
});

describe('medsam2 model folders', () => {
  it('refuses wrong tensor names, naming the module and what it lacks', async () => {
    const wrong = writeTinySam2(path.join(tmp, 'wrong'), { rename: { image_embeddings: 'image_embed' } });
    const error = await MedSam2Engine.create({ modelDir: wrong, threads: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BadRequest);
    expect((error as Error).message).toMatch(
      /mask_decoder\.onnx: missing inputs image_embeddings \(has .*image_embed/,
    );
  }, 60_000);

  it('refuses a folder without the modules', async () => {
    await expect(MedSam2Engine.create({ modelDir: path.join(tmp, 'nothing') })).rejects.toThrow(
      /cannot load the medsam2 module image_encoder\.onnx/,
    );
  });

  it('CLI: --model-dir and MEDSTREAM_MODEL_DIR; wrong names exit 2 with nothing written', async () => {
    // The phantom as uint8 (HU + 100: background ~0, ellipsoid ~250), window 0..255.
    const nifti = path.join(tmp, 'phantom.nii.gz');
    writeFileSync(
      nifti,
      encodeNiftiMask(
        volume,
        Uint8Array.from(volume.data, (x) => Math.max(0, Math.min(255, x + 100))),
      ),
    );
    const out = path.join(tmp, 'mask.nii.gz');
    const args = ['segment', '--input', nifti, '--slice', String(KEY), '--box', '11,9,37,31'];
    const ok = await runMedstream(
      [...args, '--window', '0,255', '--engine', 'medsam2', '--out', out, '--json'],
      {
        env: { ...process.env, MEDSTREAM_MODEL_DIR: modelDir },
      },
    );
    expect(ok.stderr).not.toMatch(/Error/);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ engine: 'medsam2' });
    expect(existsSync(out)).toBe(true);

    const bad = path.join(tmp, 'bad.nii.gz');
    const wrong = writeTinySam2(path.join(tmp, 'wrong-cli'), { rename: { obj_ptr: 'pointer' } });
    const refused = await runMedstream([...args, '--engine', 'medsam2', '--model-dir', wrong, '--out', bad]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/mlp\.onnx: missing outputs obj_ptr/);
    expect(existsSync(bad)).toBe(false);

    // No folder at all: a BadRequest (exit 2) that says which setting is missing.
    await expect(createEngine('medsam2', {})).rejects.toThrow(/--engine medsam2 needs --model-dir/);
  }, 120_000);
});
