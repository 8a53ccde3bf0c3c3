// The `medsam2` engine: the SAM2 / MedSAM2 video predictor as seven ONNX modules in the layout of
// the public SAM2 ONNX exports (image encoder, prompt encoder, mask decoder, memory attention,
// memory encoder, object-pointer MLP, object-pointer temporal projection), loaded from a model
// folder the user exports (docs/segmentation.md). The memory bank and object pointers are kept
// here (sam2-memory.ts); slices are the video's frames. Each tensor name the engine feeds or reads
// is checked at load, so a folder of other models is refused with the names it lacks.

import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { BadRequest } from '../errors.js';
import type { Box, EngineInput, EngineSession, SegmentationEngine, SliceMask } from './engine.js';
import {
  type AttentionInputs,
  type MemoryEntry,
  Sam2MemoryBank,
  sinePositionEncoding,
} from './sam2-memory.js';
import { resizeBilinear, sam2Input } from './sam2-image.js';
import { sliceOf } from './volume-mask.js';

/** Every module's file and the tensor names the engine uses (inputs fed, outputs read). */
export const SAM2_MODULES = {
  imageEncoder: {
    file: 'image_encoder.onnx',
    inputs: ['input_image'],
    outputs: ['vision_features', 'vision_pos_enc_2', 'backbone_fpn_0', 'backbone_fpn_1'],
  },
  promptEncoder: {
    file: 'prompt_encoder.onnx',
    inputs: ['coords', 'labels', 'masks', 'masks_enable'],
    outputs: ['sparse_embeddings', 'dense_embeddings', 'dense_pe'],
  },
  maskDecoder: {
    file: 'mask_decoder.onnx',
    inputs: [
      'image_embeddings',
      'image_pe',
      'sparse_prompt_embeddings',
      'dense_prompt_embeddings',
      'high_res_features1',
      'high_res_features2',
    ],
    outputs: ['masks', 'iou_pred', 'sam_tokens_out', 'object_score_logits'],
  },
  memoryAttention: {
    file: 'memory_attention.onnx',
    inputs: ['curr', 'memory', 'curr_pos', 'memory_pos', 'num_obj_ptr_tokens'],
    outputs: ['pix_feat_with_mem'],
  },
  memoryEncoder: {
    file: 'memory_encoder.onnx',
    inputs: ['pix_feat', 'masks'],
    outputs: ['maskmem_features', 'maskmem_pos_enc'],
  },
  mlp: { file: 'mlp.onnx', inputs: ['x'], outputs: ['obj_ptr'] },
  objPtrTposProj: { file: 'obj_ptr_tpos_proj.onnx', inputs: ['x'], outputs: ['obj_ptr_tpos'] },
} as const;

type ModuleName = keyof typeof SAM2_MODULES;

/** Optional `medsam2.json` in the model folder: the model's settings and its few loose parameters. */
export interface Sam2Constants {
  image_size?: number;
  num_maskmem?: number;
  max_obj_ptrs?: number;
  /** sam2's maskmem_tpos_enc, [num_maskmem][mem_dim]. */
  maskmem_tpos_enc?: number[][];
  /** Added to the prompted frame's features when it has no memory (sam2's no_mem_embed). */
  no_mem_embed?: number[];
  /** The pointer of a frame where the object score says "absent" (sam2's no_obj_ptr). */
  no_obj_ptr?: number[];
  sigmoid_scale_for_mem_enc?: number;
  sigmoid_bias_for_mem_enc?: number;
}

export interface MedSam2Options {
  modelDir: string;
  /** ORT intra-op threads per module (default: cores). */
  threads?: number;
  /** Slice encodings kept per volume (default 16). */
  cacheSize?: number;
}

interface Encoding {
  features: Float32Array;
  position: Float32Array;
  fpn0: ort.Tensor;
  fpn1: ort.Tensor;
  channels: number;
  h: number;
  w: number;
}

const NO_OBJ_SCORE = -1024;

export class MedSam2Engine implements SegmentationEngine {
  readonly name = 'medsam2';

  private constructor(
    private readonly sessions: Record<ModuleName, ort.InferenceSession>,
    readonly constants: Sam2Constants,
    private readonly options: MedSam2Options,
  ) {}

  static async create(options: MedSam2Options): Promise<MedSam2Engine> {
    const dir = options.modelDir;
    let constants: Sam2Constants = {};
    const constantsText = await readFile(path.join(dir, 'medsam2.json'), 'utf8').catch(() => undefined);
    if (constantsText !== undefined) {
      try {
        constants = JSON.parse(constantsText) as Sam2Constants;
      } catch (e) {
        throw new BadRequest(`${path.join(dir, 'medsam2.json')} is not JSON: ${(e as Error).message}`);
      }
    }
    const threads = options.threads ?? os.availableParallelism();
    const sessions: Partial<Record<ModuleName, ort.InferenceSession>> = {};
    const release = async () => {
      for (const s of Object.values(sessions)) await s.release();
    };
    const problems: string[] = [];
    for (const [name, spec] of Object.entries(SAM2_MODULES) as [
      ModuleName,
      (typeof SAM2_MODULES)[ModuleName],
    ][]) {
      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(path.join(dir, spec.file), {
          intraOpNumThreads: threads,
        });
      } catch (e) {
        await release();
        throw new BadRequest(
          `cannot load the medsam2 module ${spec.file} from ${dir}: ${(e as Error).message.split('\n')[0]} (docs/segmentation.md lists the seven files)`,
        );
      }
      sessions[name] = session;
      const missingIn = spec.inputs.filter((n) => !session.inputNames.includes(n));
      const missingOut = spec.outputs.filter((n) => !session.outputNames.includes(n));
      if (missingIn.length > 0 || missingOut.length > 0) {
        problems.push(
          `${spec.file}: ${missingIn.length ? `missing inputs ${missingIn.join(', ')} (has ${session.inputNames.join(', ')})` : ''}` +
            `${missingIn.length && missingOut.length ? '; ' : ''}` +
            `${missingOut.length ? `missing outputs ${missingOut.join(', ')} (has ${session.outputNames.join(', ')})` : ''}`,
        );
      }
    }
    if (problems.length > 0) {
      await release();
      throw new BadRequest(
        `${dir} does not hold MedSAM2 modules in the SAM2 ONNX layout: ${problems.join('; ')}`,
      );
    }
    return new MedSam2Engine(sessions as Record<ModuleName, ort.InferenceSession>, constants, options);
  }

  get imageSize(): number {
    return this.constants.image_size ?? 512;
  }

  async open(input: EngineInput): Promise<EngineSession> {
    return this.openSession(input);
  }

  /** A session with its memory bank in view (tests and diagnostics). */
  async openSession(input: EngineInput): Promise<MedSam2Session> {
    return new MedSam2Session(
      this.sessions,
      this.constants,
      this.imageSize,
      input,
      this.options.cacheSize ?? 16,
    );
  }

  async close(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s.release();
  }
}

export class MedSam2Session implements EngineSession {
  private readonly cache = new Map<number, Promise<Encoding>>();
  private bankOf: Sam2MemoryBank | undefined;
  /** The memory attention's last inputs (which frames, how many tokens). */
  lastAttention: Omit<AttentionInputs, 'memory' | 'memoryPos'> | undefined;
  /** Image-encoder runs so far (encodings are cached across passes). */
  encoderRuns = 0;
  private readonly width: number;
  private readonly height: number;

  constructor(
    private readonly modules: Record<ModuleName, ort.InferenceSession>,
    private readonly constants: Sam2Constants,
    private readonly size: number,
    private readonly input: EngineInput,
    private readonly cacheSize: number,
  ) {
    [this.width, this.height] = input.volume.dims;
  }

  get bank(): Sam2MemoryBank | undefined {
    return this.bankOf;
  }

  async segmentBox(k: number, box: Box): Promise<SliceMask> {
    const enc = await this.encode(k);
    const features = enc.features.slice();
    const noMem = this.constants.no_mem_embed;
    const hw = enc.h * enc.w;
    if (noMem)
      for (let c = 0; c < enc.channels; c++) for (let s = 0; s < hw; s++) features[c * hw + s] += noMem[c];
    const sx = this.size / this.width;
    const sy = this.size / this.height;
    // The corners as MedSAM2 passes them (mask2D_to_bbox: inclusive pixels), scaled to the model size.
    const coords = new Float32Array([box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy]);
    const step = await this.decode(enc, features, coords, new Int32Array([2, 3]), false);
    const entry = await this.memoryEntry(enc, step.logits, step.pointer, true);
    (this.bankOf as Sam2MemoryBank).addConditioning(k, entry);
    return this.toSlice(step.logits, enc);
  }

  async propagate(k: number, _previous: SliceMask, from: number): Promise<SliceMask> {
    const direction: 1 | -1 = k > from ? 1 : -1;
    const bank = this.ensureBank();
    const enc = await this.encode(k);
    const attention = bank.attentionInputs(k, direction);
    if (attention.pointerFrames.length > 0) {
      const maxDistance = Math.max(1, bank.maxObjPtrs - 1);
      const sine = sinePositionEncoding(
        attention.pointerDistances.map((d) => d / maxDistance),
        enc.channels,
      );
      const out = await this.modules.objPtrTposProj.run({
        x: new ort.Tensor('float32', sine, [attention.pointerFrames.length, enc.channels]),
      });
      bank.setPointerPositions(attention, out.obj_ptr_tpos.data as Float32Array);
    }
    const { memory, memoryPos, ...shape } = attention;
    this.lastAttention = shape;
    const hw = enc.h * enc.w;
    const memDim = bank.layout.memDim;
    const out = await this.modules.memoryAttention.run({
      curr: new ort.Tensor('float32', toSequence(enc.features, enc.channels, hw), [hw, 1, enc.channels]),
      curr_pos: new ort.Tensor('float32', toSequence(enc.position, enc.channels, hw), [hw, 1, enc.channels]),
      memory: new ort.Tensor('float32', memory, [attention.length, 1, memDim]),
      memory_pos: new ort.Tensor('float32', memoryPos, [attention.length, 1, memDim]),
      num_obj_ptr_tokens: new ort.Tensor('int64', BigInt64Array.from([BigInt(attention.objPtrTokens)]), []),
    });
    const conditioned = fromSequence(out.pix_feat_with_mem.data as Float32Array, enc.channels, hw);
    const step = await this.decode(enc, conditioned, new Float32Array([0, 0]), new Int32Array([-1]), true);
    bank.addTracked(k, await this.memoryEntry(enc, step.logits, step.pointer, false), direction);
    return this.toSlice(step.logits, enc);
  }

  reset(): void {
    this.bankOf?.clear();
    this.lastAttention = undefined;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.cache.values()]);
    this.cache.clear();
  }

  /** The bank, built by the first memoryEntry (its memory dim is the memory encoder's channels). */
  private ensureBank(): Sam2MemoryBank {
    if (!this.bankOf || this.bankOf.empty)
      throw new Error('medsam2: propagate() before segmentBox() prompted a slice');
    return this.bankOf;
  }

  private encode(k: number): Promise<Encoding> {
    let hit = this.cache.get(k);
    if (hit) {
      this.cache.delete(k);
      this.cache.set(k, hit);
      return hit;
    }
    const pixels = sliceOf(this.input.windowed, this.input.volume.dims, k);
    const image = sam2Input(pixels, this.width, this.height, this.size);
    this.encoderRuns++;
    hit = this.modules.imageEncoder
      .run({ input_image: new ort.Tensor('float32', image, [1, 3, this.size, this.size]) })
      .then((out) => {
        const vf = out.vision_features;
        const [, channels, h, w] = vf.dims.map(Number);
        return {
          features: vf.data as Float32Array,
          position: out.vision_pos_enc_2.data as Float32Array,
          fpn0: out.backbone_fpn_0,
          fpn1: out.backbone_fpn_1,
          channels,
          h,
          w,
        };
      });
    hit.catch(() => this.cache.delete(k));
    this.cache.set(k, hit);
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value as number);
    return hit;
  }

  /** Prompt encoder + mask decoder; picks SAM2's mask (token 0 for a box, best IoU when tracking). */
  private async decode(
    enc: Encoding,
    features: Float32Array,
    coords: Float32Array,
    labels: Int32Array,
    multimask: boolean,
  ): Promise<{ logits: Float32Array; pointer: Float32Array }> {
    const lowH = enc.h * 4;
    const lowW = enc.w * 4;
    const prompt = await this.modules.promptEncoder.run({
      coords: new ort.Tensor('float32', coords, [1, labels.length, 2]),
      labels: new ort.Tensor('int32', labels, [1, labels.length]),
      masks: new ort.Tensor('float32', new Float32Array(lowH * lowW), [1, lowH, lowW]),
      masks_enable: new ort.Tensor('int32', new Int32Array([0]), [1]),
    });
    const out = await this.modules.maskDecoder.run({
      image_embeddings: new ort.Tensor('float32', features, [1, enc.channels, enc.h, enc.w]),
      image_pe: prompt.dense_pe,
      sparse_prompt_embeddings: prompt.sparse_embeddings,
      dense_prompt_embeddings: prompt.dense_embeddings,
      high_res_features1: enc.fpn0,
      high_res_features2: enc.fpn1,
    });
    const [, count, mh, mw] = out.masks.dims.map(Number);
    if (mh !== lowH || mw !== lowW)
      throw new BadRequest(
        `mask_decoder answered ${mh}x${mw} masks; expected ${lowH}x${lowW} (4x the features)`,
      );
    const iou = out.iou_pred.data as Float32Array;
    let best = 0;
    if (multimask && count > 1) {
      best = 1;
      for (let m = 2; m < count; m++) if (iou[m] > iou[best]) best = m;
    }
    const plane = lowH * lowW;
    const logits = (out.masks.data as Float32Array).slice(best * plane, (best + 1) * plane);
    const tokens = out.sam_tokens_out.data as Float32Array;
    const token = tokens.slice(best * enc.channels, (best + 1) * enc.channels);
    const mlp = await this.modules.mlp.run({ x: new ort.Tensor('float32', token, [1, enc.channels]) });
    let pointer = (mlp.obj_ptr.data as Float32Array).slice();
    // The object score: below 0 the object is absent here (MedSAM2 stops by itself this way).
    if ((out.object_score_logits.data as Float32Array)[0] <= 0) {
      logits.fill(NO_OBJ_SCORE);
      pointer = this.constants.no_obj_ptr ? Float32Array.from(this.constants.no_obj_ptr) : pointer.fill(0);
    }
    return { logits, pointer };
  }

  /** The memory encoder on the raw features and the mask (binarised for prompts, else sigmoid), scaled as SAM2. */
  private async memoryEntry(
    enc: Encoding,
    logits: Float32Array,
    pointer: Float32Array,
    prompted: boolean,
  ): Promise<MemoryEntry> {
    const lowH = enc.h * 4;
    const lowW = enc.w * 4;
    const high = resizeBilinear(logits, lowW, lowH, this.size, this.size);
    const scale = this.constants.sigmoid_scale_for_mem_enc ?? 20;
    const bias = this.constants.sigmoid_bias_for_mem_enc ?? -10;
    for (let i = 0; i < high.length; i++) {
      const p = prompted ? (high[i] > 0 ? 1 : 0) : 1 / (1 + Math.exp(-high[i]));
      high[i] = p * scale + bias;
    }
    const out = await this.modules.memoryEncoder.run({
      pix_feat: new ort.Tensor('float32', enc.features, [1, enc.channels, enc.h, enc.w]),
      masks: new ort.Tensor('float32', high, [1, 1, this.size, this.size]),
    });
    const features = out.maskmem_features;
    const memDim = Number(features.dims[1]);
    if (!this.bankOf) {
      const tpos = this.constants.maskmem_tpos_enc?.map((row) => Float32Array.from(row));
      this.bankOf = new Sam2MemoryBank({
        memDim,
        hiddenDim: enc.channels,
        tokens: enc.h * enc.w,
        numMaskmem: this.constants.num_maskmem,
        maxObjPtrs: this.constants.max_obj_ptrs,
        tposEnc: tpos,
      });
    }
    return {
      features: features.data as Float32Array,
      position: out.maskmem_pos_enc.data as Float32Array,
      pointer,
    };
  }

  /** Low-res logits back to the slice's size, thresholded at 0. */
  private toSlice(logits: Float32Array, enc: Encoding): SliceMask {
    const full = resizeBilinear(logits, enc.w * 4, enc.h * 4, this.width, this.height);
    const mask = new Uint8Array(full.length);
    for (let i = 0; i < full.length; i++) mask[i] = full[i] > 0 ? 1 : 0;
    return mask;
  }
}

/** [C, hw] channel-major -> [hw, C] sequence-first. */
function toSequence(data: Float32Array, channels: number, hw: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let c = 0; c < channels; c++) for (let s = 0; s < hw; s++) out[s * channels + c] = data[c * hw + s];
  return out;
}

/** [hw, C] sequence-first -> [C, hw] channel-major. */
function fromSequence(data: Float32Array, channels: number, hw: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let s = 0; s < hw; s++) for (let c = 0; c < channels; c++) out[c * hw + s] = data[s * channels + c];
  return out;
}
