// The test ONNX writer: the models it writes load in onnxruntime-node with the declared names
// and a dynamic batch dimension, and compute what their known weights say.

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  convClassifier,
  floatTensor,
  floatValue,
  linearClassifier,
  node,
  onnxModel,
  pointwiseConvSigmoid,
} from '../support/onnx-writer.js';

const session = (bytes: Buffer) => ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });

describe('onnx-writer', () => {
  it('writes a linear classifier with a dynamic batch that softmaxes W·means + b', async () => {
    const s = await session(
      linearClassifier({
        channels: 2,
        size: 2,
        weights: [
          [1, 0],
          [0, 2],
          [-1, 1],
        ],
        bias: [0, 0.5, 0],
      }),
    );
    expect(s.inputNames).toEqual(['image']);
    expect(s.outputNames).toEqual(['scores']);
    const meta = s.inputMetadata[0];
    expect(meta.isTensor && meta.shape).toEqual(['N', 2, 2, 2]);
    // Two images: channel means (1, 2) and (0.5, -1).
    const data = Float32Array.from([1, 1, 1, 1, 2, 2, 2, 2, 0.5, 0.5, 0.5, 0.5, -1, -1, -1, -1]);
    const out = await s.run({ image: new ort.Tensor('float32', data, [2, 2, 2, 2]) });
    const scores = out.scores;
    expect(scores.dims).toEqual([2, 3]);
    const softmax = (z: number[]) => {
      const e = z.map(Math.exp);
      const sum = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / sum);
    };
    const expected = [...softmax([1, 4.5, 1]), ...softmax([0.5, -1.5, -1.5])];
    [...(scores.data as Float32Array)].forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    await s.release();
  });

  it('writes a 1x1 convolution plus sigmoid', async () => {
    const s = await session(
      pointwiseConvSigmoid({ channels: 3, size: 2, weights: [1, -1, 0.5], bias: 0.25 }),
    );
    const data = Float32Array.from([0, 1, 2, 3, 1, 1, 1, 1, 2, 2, 0, 0]);
    const out = await s.run({ image: new ort.Tensor('float32', data, [1, 3, 2, 2]) });
    expect(out.map.dims).toEqual([1, 1, 2, 2]);
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    const expected = [0, 1, 2, 3].map((i) => sig(data[i] - data[4 + i] + 0.5 * data[8 + i] + 0.25));
    [...(out.map.data as Float32Array)].forEach((v, i) => expect(v).toBeCloseTo(expected[i], 6));
    await s.release();
  });

  it('writes Relu, Add, MatMul and metadata', async () => {
    const bytes = onnxModel({
      inputs: [floatValue('x', ['batch', 2])],
      outputs: [floatValue('y', ['batch', 2])],
      nodes: [node('MatMul', ['x', 'M'], ['m']), node('Add', ['m', 'c'], ['a']), node('Relu', ['a'], ['y'])],
      initializers: [floatTensor('M', [2, 2], [1, 2, 3, 4]), floatTensor('c', [2], [-10, 0])],
      metadata: { task: 'test' },
    });
    const s = await session(bytes);
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 1, 2, 3]), [2, 2]) });
    // [1,1]·M = [4, 6] + c = [-6, 6] -> [0, 6]; [2,3]·M = [11, 16] -> [1, 16].
    expect([...(out.y.data as Float32Array)]).toEqual([0, 6, 1, 16]);
    await s.release();
  });

  it('writes a convolutional classifier that runs on a batch', async () => {
    const s = await session(convClassifier({ size: 16, filters: 4, classes: 2 }));
    const out = await s.run({
      image: new ort.Tensor('float32', new Float32Array(3 * 3 * 16 * 16).fill(0.5), [3, 3, 16, 16]),
    });
    expect(out.scores.dims).toEqual([3, 2]);
    const d = out.scores.data as Float32Array;
    expect(d[0] + d[1]).toBeCloseTo(1, 6);
    expect(d[2]).toBeCloseTo(d[0], 6);
    await s.release();
  });
});
