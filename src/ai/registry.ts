// The model registry: every folder of `--models-dir` holding `model.onnx` and `model.json` is a
// model named after its folder. At start each declaration is parsed, the model loaded in its own
// worker thread and checked against the graph; any failure stops the server (ConfigError naming
// the model and the tensor or field). The built-in `tissue` model is listed beside them.

import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, NotFound } from '../errors.js';
import { Batcher, type BatchOptions } from './batcher.js';
import { parseDeclaration, type ModelDeclaration } from './declaration.js';
import { checkGraph } from './graph-check.js';
import { OnnxModel, type ModelOutput } from './model.js';
import { ModelWorker } from './model-worker.js';

export interface RegistryOptions {
  /** Folder of model folders; undefined = only the built-in models. */
  modelsDir?: string;
  /** Defaults every model.json `batching` may override. */
  batching: BatchOptions;
  /** ONNX Runtime intra-op threads per model session. */
  intraOpThreads: number;
  /** Longest one batch may run, ms (0 = no limit); model.json `batching.timeoutMs` overrides. */
  batchTimeoutMs?: number;
}

export const BUILT_IN_MODELS = ['tissue'] as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class ModelRegistry {
  private constructor(private readonly models: Map<string, OnnxModel>) {}

  static async load(options: RegistryOptions): Promise<ModelRegistry> {
    const models = new Map<string, OnnxModel>();
    if (options.modelsDir === undefined) return new ModelRegistry(models);
    const dir = path.resolve(options.modelsDir);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      throw new ConfigError(`--models-dir: cannot read ${JSON.stringify(dir)}: ${(e as Error).message}`);
    }
    const folders = entries
      .filter((e) => e.isDirectory())
      .map((e) => e.name)
      .sort();
    try {
      for (const name of folders) {
        const model = await loadModel(dir, name, options);
        if (model) models.set(name, model);
      }
    } catch (e) {
      await Promise.all([...models.values()].map((m) => m.worker.close()));
      throw e;
    }
    return new ModelRegistry(models);
  }

  get(name: string): OnnxModel {
    const model = this.models.get(name);
    if (!model) throw new NotFound(`no model ${JSON.stringify(name)}`);
    return model;
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  list(): OnnxModel[] {
    return [...this.models.values()];
  }

  async close(): Promise<void> {
    for (const model of this.models.values()) model.batcher.close();
    await Promise.all([...this.models.values()].map((m) => m.worker.close()));
  }
}

async function loadModel(
  dir: string,
  name: string,
  options: RegistryOptions,
): Promise<OnnxModel | undefined> {
  const folder = path.join(dir, name);
  const jsonPath = path.join(folder, 'model.json');
  const onnxPath = path.join(folder, 'model.onnx');
  const exists = async (p: string) => (await stat(p).catch(() => undefined))?.isFile() === true;
  const hasJson = await exists(jsonPath);
  const hasOnnx = await exists(onnxPath);
  if (!hasJson && !hasOnnx) return undefined; // not a model folder
  if (!NAME.test(name)) throw new ConfigError(`model folder ${JSON.stringify(name)}: not a valid model name`);
  if ((BUILT_IN_MODELS as readonly string[]).includes(name))
    throw new ConfigError(`model ${JSON.stringify(name)}: the name is taken by a built-in model`);
  if (!hasJson)
    throw new ConfigError(`model ${JSON.stringify(name)}: ${folder} has model.onnx but no model.json`);
  if (!hasOnnx)
    throw new ConfigError(`model ${JSON.stringify(name)}: ${folder} has model.json but no model.onnx`);
  const declaration = parseDeclaration(name, await readFile(jsonPath, 'utf8'));
  const batching: BatchOptions = {
    maxBatch: declaration.batching.maxBatch ?? options.batching.maxBatch,
    maxWaitMs: declaration.batching.maxWaitMs ?? options.batching.maxWaitMs,
    maxQueue: declaration.batching.maxQueue ?? options.batching.maxQueue,
    eager: declaration.batching.eager ?? options.batching.eager ?? true,
  };
  const worker = new ModelWorker(onnxPath, options.intraOpThreads, name, {
    timeoutMs: declaration.batching.timeoutMs ?? options.batchTimeoutMs ?? 0,
  });
  try {
    let graph;
    try {
      graph = await worker.load();
    } catch (e) {
      throw new ConfigError(
        `model ${JSON.stringify(name)}: model.onnx does not load: ${(e as Error).message}`,
      );
    }
    checkGraph(name, declaration, graph, batching.maxBatch);
    const run = runner(name, declaration, worker);
    return new OnnxModel(
      name,
      declaration,
      graph,
      worker,
      (arriving) => new Batcher(name, batching, run, arriving),
    );
  } catch (e) {
    await worker.close();
    throw e;
  }
}

/** The batch runner: one worker run, its output split along the batch dimension. */
function runner(name: string, decl: ModelDeclaration, worker: ModelWorker) {
  return async (data: Float32Array, count: number): Promise<ModelOutput[]> => {
    const out = await worker.run(decl.input.name, decl.output.name, data, OnnxModel.inputDims(decl, count));
    if (out.dims[0] !== count)
      throw new Error(`model ${name}: output batch ${out.dims[0]} for ${count} inputs`);
    const size = out.data.length / count;
    const dims = out.dims.slice(1);
    return Array.from({ length: count }, (_, i) => ({
      data: out.data.subarray(i * size, (i + 1) * size),
      dims,
    }));
  };
}
