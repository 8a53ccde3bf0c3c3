// The SAM2 / MedSAM2 video predictor's memory, kept in TypeScript (sam2_base.py's
// `_prepare_memory_conditioned_features`): the conditioning (prompted) frame's memory is always
// kept; of the frames tracked since, the 6 nearest in the direction of travel join it (7 memory
// frames), each with its temporal encoding; object pointers of up to 16 frames follow as tokens.
// Pure bookkeeping and tensor layout, no ONNX: the engine (medsam2.ts) runs the modules.

/** What one tracked frame leaves behind. */
export interface MemoryEntry {
  /** The memory encoder's features, channel-major [memDim, hw]. */
  features: Float32Array;
  /** Their positional encoding, channel-major [memDim, hw]. */
  position: Float32Array;
  /** The object pointer [hiddenDim]. */
  pointer: Float32Array;
}

export interface MemoryLayout {
  /** Channels of the memory features (64 in SAM2). */
  memDim: number;
  /** Channels of the image features and object pointers (256 in SAM2). */
  hiddenDim: number;
  /** Spatial tokens per frame (h x w of the image features). */
  tokens: number;
  /** Memory frames attended to, the conditioning frame included (7 in SAM2). */
  numMaskmem?: number;
  /** Object pointers attended to at most (16 in SAM2). */
  maxObjPtrs?: number;
  /** Temporal encodings [numMaskmem][memDim] (sam2's maskmem_tpos_enc); zeros when absent. */
  tposEnc?: Float32Array[];
}

/** The memory attention's inputs for one frame, in the layout of SAM2's export (sequence-first). */
export interface AttentionInputs {
  /** [L, 1, memDim], spatial memories then pointer tokens. */
  memory: Float32Array;
  memoryPos: Float32Array;
  /** L. */
  length: number;
  /** Pointer tokens at the end of `memory` (pointers x hiddenDim / memDim). */
  objPtrTokens: number;
  /** Frames whose spatial memory is used, in order (conditioning frame first). */
  memoryFrames: number[];
  /** Frames whose object pointer is used, in order. */
  pointerFrames: number[];
  /** Relative temporal positions of those pointers (fed through obj_ptr_tpos_proj). */
  pointerDistances: number[];
}

export class Sam2MemoryBank {
  private readonly conditioning = new Map<number, MemoryEntry>();
  private readonly tracked = new Map<number, MemoryEntry>();
  readonly numMaskmem: number;
  readonly maxObjPtrs: number;

  constructor(readonly layout: MemoryLayout) {
    this.numMaskmem = layout.numMaskmem ?? 7;
    this.maxObjPtrs = layout.maxObjPtrs ?? 16;
    if (layout.hiddenDim % layout.memDim !== 0)
      throw new Error(`hidden dim ${layout.hiddenDim} is not a multiple of memory dim ${layout.memDim}`);
  }

  get empty(): boolean {
    return this.conditioning.size === 0 && this.tracked.size === 0;
  }

  /** Frames held, for inspection: conditioning frames and tracked frames (spatial memory kept or not). */
  frames(): { conditioning: number[]; tracked: number[]; withFeatures: number[] } {
    const withFeatures = [...this.tracked].filter(([, e]) => e.features.length > 0).map(([k]) => k);
    return { conditioning: [...this.conditioning.keys()], tracked: [...this.tracked.keys()], withFeatures };
  }

  addConditioning(frame: number, entry: MemoryEntry): void {
    this.tracked.delete(frame);
    this.conditioning.set(frame, entry);
  }

  /**
   * Adds a tracked frame; `direction` is the pass's (+1 forward, -1 backward). Frames too far
   * behind to be used again are dropped (features beyond numMaskmem - 1, pointers beyond maxObjPtrs - 1),
   * so the bank stays bounded however long the pass.
   */
  addTracked(frame: number, entry: MemoryEntry, direction: 1 | -1): void {
    this.tracked.set(frame, entry);
    for (const [k, e] of this.tracked) {
      const behind = (frame - k) * direction;
      if (behind >= this.maxObjPtrs - 1) this.tracked.delete(k);
      else if (behind >= this.numMaskmem - 1 && e.features.length > 0)
        this.tracked.set(k, {
          features: new Float32Array(0),
          position: new Float32Array(0),
          pointer: e.pointer,
        });
    }
  }

  clear(): void {
    this.conditioning.clear();
    this.tracked.clear();
  }

  /** The memory attention's inputs for `frame`, tracked in `direction`. */
  attentionInputs(frame: number, direction: 1 | -1): AttentionInputs {
    const { memDim, hiddenDim, tokens } = this.layout;
    const memoryFrames: number[] = [];
    const parts: { entry: MemoryEntry; tpos: number }[] = [];
    for (const [k, entry] of this.conditioning) {
      memoryFrames.push(k);
      parts.push({ entry, tpos: this.numMaskmem - 1 });
    }
    for (let t = 1; t < this.numMaskmem; t++) {
      const k = frame - t * direction;
      const entry = this.tracked.get(k);
      if (!entry || entry.features.length === 0) continue;
      memoryFrames.push(k);
      parts.push({ entry, tpos: this.numMaskmem - t - 1 });
    }

    // Object pointers: conditioning frames not ahead of this one, then tracked frames behind it.
    const pointerFrames: number[] = [];
    const pointerDistances: number[] = [];
    const pointers: Float32Array[] = [];
    for (const [k, entry] of this.conditioning) {
      if ((frame - k) * direction < 0) continue;
      pointerFrames.push(k);
      pointerDistances.push((frame - k) * direction);
      pointers.push(entry.pointer);
    }
    for (let t = 1; t < this.maxObjPtrs && pointers.length < this.maxObjPtrs; t++) {
      const k = frame - t * direction;
      const entry = this.tracked.get(k);
      if (!entry) continue;
      pointerFrames.push(k);
      pointerDistances.push(t);
      pointers.push(entry.pointer);
    }

    const split = hiddenDim / memDim;
    const objPtrTokens = pointers.length * split;
    const length = parts.length * tokens + objPtrTokens;
    const memory = new Float32Array(length * memDim);
    const memoryPos = new Float32Array(length * memDim);
    let row = 0;
    for (const { entry, tpos } of parts) {
      const tposEnc = this.layout.tposEnc?.[tpos];
      // [memDim, hw] channel-major -> [hw, memDim] sequence-first.
      for (let s = 0; s < tokens; s++, row++) {
        for (let c = 0; c < memDim; c++) {
          memory[row * memDim + c] = entry.features[c * tokens + s];
          memoryPos[row * memDim + c] = entry.position[c * tokens + s] + (tposEnc ? tposEnc[c] : 0);
        }
      }
    }
    // Each pointer [hiddenDim] becomes `split` tokens of memDim (the positional part is filled by
    // the engine from obj_ptr_tpos_proj, see `pointerPositionRows`).
    for (const pointer of pointers) {
      for (let j = 0; j < split; j++, row++)
        memory.set(pointer.subarray(j * memDim, (j + 1) * memDim), row * memDim);
    }
    return { memory, memoryPos, length, objPtrTokens, memoryFrames, pointerFrames, pointerDistances };
  }

  /** Writes projected pointer positions ([pointers][memDim]) into the pointer rows of `inputs.memoryPos`. */
  setPointerPositions(inputs: AttentionInputs, projected: Float32Array): void {
    const { memDim, hiddenDim } = this.layout;
    const split = hiddenDim / memDim;
    const first = inputs.length - inputs.objPtrTokens;
    for (let p = 0; p < inputs.pointerFrames.length; p++) {
      const pos = projected.subarray(p * memDim, (p + 1) * memDim);
      for (let j = 0; j < split; j++) inputs.memoryPos.set(pos, (first + p * split + j) * memDim);
    }
  }
}

/**
 * sam2_utils.get_1d_sine_pe: sine/cosine encodings of `positions` (already normalised by the
 * largest distance), `dim` values each: [sin(p / T^(2i/dim))..., cos(...)...].
 */
export function sinePositionEncoding(positions: number[], dim: number, temperature = 10000): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(positions.length * dim);
  positions.forEach((p, row) => {
    for (let i = 0; i < half; i++) {
      const scale = temperature ** ((2 * Math.floor(i / 2)) / half);
      out[row * dim + i] = Math.sin(p / scale);
      out[row * dim + half + i] = Math.cos(p / scale);
    }
  });
  return out;
}
