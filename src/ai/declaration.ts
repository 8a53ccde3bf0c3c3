// A model's declaration (`model.json` beside `model.onnx`): its task, input tensor, preprocessing
// pipeline, labels and how to read its output. Parsed and checked here, field by field, so a bad
// declaration stops the server with a message naming the model and the field (ConfigError).

import { ConfigError } from '../errors.js';

export type Task = 'classification' | 'segmentation' | 'heatmap';
export type Layout = 'NCHW' | 'NHWC';
/** stretch: fill the input, aspect ignored; letterbox: fit inside, pad; crop: cover, centre crop. */
export type ResizeMode = 'stretch' | 'letterbox' | 'crop';
export type Activation = 'softmax' | 'sigmoid' | 'none';

/**
 * Maps pixel values to [0, 1] before `range`, `mean` and `std`:
 * fixed: (v - min) / (max - min), clamped (default 0..255); minmax: the image's own min..max;
 * window: a radiology window, (v - (center - width / 2)) / width, clamped. On radiology inputs the
 * request's window wins over the declared one, and without either the instance's VOI window (else
 * the image's min..max) is used; center and width may then be left out.
 */
export type Scaling =
  | { type: 'fixed'; min: number; max: number }
  | { type: 'minmax' }
  | { type: 'window'; center?: number; width?: number };

export interface Preprocessing {
  resize: ResizeMode;
  /** Letterbox padding, as a value of the source pixels (0-255) before scaling. */
  pad: number;
  scaling: Scaling;
  /** [lo, hi]: the scaled 0..1 values are mapped linearly onto this range. */
  range: [number, number];
  /** Per model channel, applied last: (v - mean) / std. */
  mean: number[];
  std: number[];
}

export interface BatchingOverrides {
  maxBatch?: number;
  maxWaitMs?: number;
  maxQueue?: number;
  eager?: boolean;
  /** Longest one batch may run, ms (0 = no limit): the model then runs in a child process. */
  timeoutMs?: number;
}

export interface ModelDeclaration {
  task: Task;
  description: string;
  input: { name: string; layout: Layout; width: number; height: number; channels: 1 | 3 };
  preprocess: Preprocessing;
  labels: string[];
  output: {
    name: string;
    activation: Activation;
    /** Segmentation with one output channel: foreground where the activated value is ≥ this. */
    threshold: number;
  };
  batching: BatchingOverrides;
}

type Json = Record<string, unknown>;

/** Parses `model.json` text for model `name`; throws ConfigError naming the model and field. */
export function parseDeclaration(name: string, text: string): ModelDeclaration {
  const fail = (field: string, why: string): never => {
    throw new ConfigError(`model ${JSON.stringify(name)}: model.json ${field} ${why}`);
  };
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    return fail('', `is not JSON (${(e as Error).message})`);
  }
  if (!isObject(root)) return fail('', 'must be a JSON object');
  const r = new Reader(root, '', fail);
  const task = r.oneOf('task', ['classification', 'segmentation', 'heatmap'] as const);
  const input = r.object('input');
  const pre = r.optionalObject('preprocess');
  const output = r.object('output');
  const batching = r.optionalObject('batching');
  const channels = input.oneOf('channels', [1, 3] as const, 3);
  const scaling = pre.optionalObject('scaling');
  const scalingType = scaling.oneOf('type', ['fixed', 'minmax', 'window'] as const, 'fixed');
  let parsedScaling: Scaling;
  if (scalingType === 'window') {
    const given = scaling.has('center') || scaling.has('width');
    parsedScaling = given
      ? {
          type: 'window',
          center: scaling.number('center'),
          width: scaling.number('width', undefined, { min: Number.MIN_VALUE }),
        }
      : { type: 'window' };
  } else if (scalingType === 'minmax') {
    parsedScaling = { type: 'minmax' };
  } else {
    const min = scaling.number('min', 0);
    const max = scaling.number('max', 255);
    if (!(max > min)) fail('preprocess.scaling', `needs max > min, got ${min}..${max}`);
    parsedScaling = { type: 'fixed', min, max };
  }
  const perChannel = (field: string, fallback: number): number[] => {
    const values = pre.numbers(field, Array(channels).fill(fallback));
    if (values.length === 1) return Array(channels).fill(values[0]);
    if (values.length !== channels)
      fail(`preprocess.${field}`, `has ${values.length} values for ${channels} input channels`);
    return values;
  };
  const range = pre.numbers('range', [0, 1]);
  if (range.length !== 2) fail('preprocess.range', 'must be [lo, hi]');
  const std = perChannel('std', 1);
  if (std.some((s) => s === 0)) fail('preprocess.std', 'must not contain 0');
  const labels = r.strings('labels', []);
  const declaration: ModelDeclaration = {
    task,
    description: r.string('description', ''),
    input: {
      name: input.string('name'),
      layout: input.oneOf('layout', ['NCHW', 'NHWC'] as const, 'NCHW'),
      width: input.integer('width', undefined, { min: 1, max: 8192 }),
      height: input.integer('height', undefined, { min: 1, max: 8192 }),
      channels,
    },
    preprocess: {
      resize: pre.oneOf('resize', ['stretch', 'letterbox', 'crop'] as const, 'stretch'),
      pad: pre.number('pad', 0),
      scaling: parsedScaling,
      range: [range[0], range[1]],
      mean: perChannel('mean', 0),
      std,
    },
    labels,
    output: {
      name: output.string('name'),
      activation: output.oneOf(
        'activation',
        ['softmax', 'sigmoid', 'none'] as const,
        task === 'classification' ? 'softmax' : 'sigmoid',
      ),
      threshold: output.number('threshold', 0.5),
    },
    batching: {
      maxBatch: batching.optionalInteger('maxBatch', { min: 1, max: 1024 }),
      maxWaitMs: batching.optionalInteger('maxWaitMs', { min: 0, max: 60_000 }),
      maxQueue: batching.optionalInteger('maxQueue', { min: 1, max: 100_000 }),
      eager: batching.optionalBoolean('eager'),
      timeoutMs: batching.optionalInteger('timeoutMs', { min: 0, max: 3_600_000 }),
    },
  };
  if (task === 'classification' && labels.length === 0)
    fail('labels', 'must name the classes of a classifier');
  return declaration;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Typed field access with the path of each field in its error message. */
class Reader {
  constructor(
    private readonly json: Json,
    private readonly path: string,
    private readonly fail: (field: string, why: string) => never,
  ) {}

  private field(key: string): string {
    return this.path ? `${this.path}.${key}` : key;
  }

  object(key: string): Reader {
    const v = this.json[key];
    if (!isObject(v)) return this.fail(this.field(key), 'must be an object');
    return new Reader(v, this.field(key), this.fail);
  }

  has(key: string): boolean {
    return this.json[key] !== undefined;
  }

  optionalObject(key: string): Reader {
    return this.json[key] === undefined ? new Reader({}, this.field(key), this.fail) : this.object(key);
  }

  string(key: string, fallback?: string): string {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'string' || (fallback === undefined && v === ''))
      return this.fail(this.field(key), 'must be a non-empty string');
    return v;
  }

  strings(key: string, fallback: string[]): string[] {
    const v = this.json[key] ?? fallback;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string'))
      return this.fail(this.field(key), 'must be an array of strings');
    return v as string[];
  }

  number(key: string, fallback?: number, bounds: { min?: number } = {}): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(this.field(key), 'must be a number');
    if (bounds.min !== undefined && v < bounds.min)
      return this.fail(this.field(key), `must be at least ${bounds.min}`);
    return v;
  }

  numbers(key: string, fallback: number[]): number[] {
    const v = this.json[key] ?? fallback;
    if (!Array.isArray(v) || !v.every((n) => typeof n === 'number' && Number.isFinite(n)))
      return this.fail(this.field(key), 'must be an array of numbers');
    return v as number[];
  }

  integer(key: string, fallback: number | undefined, bounds: { min: number; max: number }): number {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < bounds.min || v > bounds.max)
      return this.fail(this.field(key), `must be an integer in ${bounds.min}..${bounds.max}`);
    return v;
  }

  optionalInteger(key: string, bounds: { min: number; max: number }): number | undefined {
    return this.json[key] === undefined ? undefined : this.integer(key, undefined, bounds);
  }

  optionalBoolean(key: string): boolean | undefined {
    const v = this.json[key];
    if (v !== undefined && typeof v !== 'boolean') return this.fail(this.field(key), 'must be true or false');
    return v as boolean | undefined;
  }

  oneOf<T extends string | number>(key: string, values: readonly T[], fallback?: T): T {
    const v = this.json[key] ?? fallback;
    if (!values.includes(v as T))
      return this.fail(this.field(key), `must be one of ${values.map((x) => JSON.stringify(x)).join(', ')}`);
    return v as T;
  }
}
