// Reading a model's output for one image, as its declaration says: class scores with labels
// (softmax, sigmoid or raw), a label mask (argmax over classes, or a threshold on one channel),
// or a heat map (one channel of activated values in 0..1).

import type { ModelDeclaration } from './declaration.js';

export interface ClassScores {
  scores: { label: string; score: number }[];
  top: { label: string; score: number };
}

export interface Plane {
  /** 8-bit pixels, one channel: a class index (mask) or round(255 * value) (heat map). */
  data: Uint8Array;
  width: number;
  height: number;
}

export function readClassification(values: Float32Array, decl: ModelDeclaration): ClassScores {
  const activated = activate([...values], decl.output.activation);
  const scores = activated.map((score, i) => ({ label: decl.labels[i] ?? String(i), score }));
  const top = scores.reduce((best, s) => (s.score > best.score ? s : best), scores[0]);
  return { scores, top };
}

/** `dims` of one image's output: [C, H, W] or [H, W]. */
export function readMask(
  values: Float32Array,
  dims: number[],
  decl: ModelDeclaration,
): Plane & { fractions: { label: string; fraction: number }[] } {
  const [c, h, w] = dims.length === 3 ? dims : [1, dims[0], dims[1]];
  const count = h * w;
  const data = new Uint8Array(count);
  const classes = c === 1 ? 2 : c;
  const pixels = new Array<number>(classes).fill(0);
  for (let i = 0; i < count; i++) {
    let k = 0;
    if (c === 1) {
      k = activate1(values[i], decl.output.activation) >= decl.output.threshold ? 1 : 0;
    } else {
      for (let j = 1; j < c; j++) if (values[j * count + i] > values[k * count + i]) k = j;
    }
    data[i] = k;
    pixels[k]++;
  }
  const fractions = pixels.map((n, k) => ({ label: decl.labels[k] ?? String(k), fraction: n / count }));
  return { data, width: w, height: h, fractions };
}

/** `dims` of one image's output: [1, H, W] or [H, W]. */
export function readHeatmap(
  values: Float32Array,
  dims: number[],
  decl: ModelDeclaration,
): Plane & { min: number; max: number; mean: number } {
  const [h, w] = dims.length === 3 ? [dims[1], dims[2]] : dims;
  const count = h * w;
  const data = new Uint8Array(count);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const v = activate1(values[i], decl.output.activation);
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    data[i] = Math.round(255 * (v < 0 ? 0 : v > 1 ? 1 : v));
  }
  return { data, width: w, height: h, min, max, mean: sum / count };
}

function activate1(v: number, activation: ModelDeclaration['output']['activation']): number {
  return activation === 'sigmoid' ? 1 / (1 + Math.exp(-v)) : v;
}

function activate(values: number[], activation: ModelDeclaration['output']['activation']): number[] {
  if (activation === 'softmax') {
    const max = Math.max(...values);
    const e = values.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  }
  return values.map((v) => activate1(v, activation));
}
