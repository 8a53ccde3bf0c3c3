// Checks a model's declaration against its ONNX graph as onnxruntime loaded it: the declared input
// and output tensors exist, are float32, have the rank the task needs, and their fixed dimensions
// agree with the declared size, channels, labels and batch size. Any mismatch is a ConfigError
// naming the model and the tensor, so the server refuses to start.

import { ConfigError } from '../errors.js';
import type { ModelDeclaration } from './declaration.js';
import type { TensorInfo } from './worker-protocol.js';

export function checkGraph(
  name: string,
  decl: ModelDeclaration,
  graph: { inputs: TensorInfo[]; outputs: TensorInfo[] },
  maxBatch: number,
): void {
  const fail = (why: string): never => {
    throw new ConfigError(`model ${JSON.stringify(name)}: ${why}`);
  };
  const names = (list: TensorInfo[]) => list.map((t) => JSON.stringify(t.name)).join(', ');
  const input = graph.inputs.find((t) => t.name === decl.input.name);
  if (!input)
    fail(
      `input tensor ${JSON.stringify(decl.input.name)} is not in model.onnx (its inputs: ${names(graph.inputs)})`,
    );
  const output = graph.outputs.find((t) => t.name === decl.output.name);
  if (!output)
    fail(
      `output tensor ${JSON.stringify(decl.output.name)} is not in model.onnx (its outputs: ${names(graph.outputs)})`,
    );
  const inp = input as TensorInfo;
  const out = output as TensorInfo;
  const extra = graph.inputs.filter((t) => t.name !== inp.name);
  if (extra.length > 0) fail(`model.onnx has inputs besides ${JSON.stringify(inp.name)}: ${names(extra)}`);
  for (const [tensor, role] of [
    [inp, 'input'],
    [out, 'output'],
  ] as const) {
    if (tensor.type !== 'float32')
      fail(`${role} tensor ${JSON.stringify(tensor.name)} is ${tensor.type}, not float32`);
  }
  const describe = (t: TensorInfo) => `[${t.shape.join(', ')}]`;
  if (inp.shape.length !== 4)
    fail(
      `input tensor ${JSON.stringify(inp.name)} has shape ${describe(inp)}; a 4-D ${decl.input.layout} image is declared`,
    );
  const { width, height, channels, layout } = decl.input;
  const expected = layout === 'NCHW' ? [channels, height, width] : [height, width, channels];
  const what = layout === 'NCHW' ? ['channels', 'height', 'width'] : ['height', 'width', 'channels'];
  expected.forEach((value, i) => {
    const dim = inp.shape[i + 1];
    if (typeof dim === 'number' && dim >= 0 && dim !== value)
      fail(
        `input tensor ${JSON.stringify(inp.name)} has ${what[i]} ${dim} (shape ${describe(inp)}), model.json declares ${value}`,
      );
  });
  checkBatch(inp, 'input');
  checkBatch(out, 'output');

  if (decl.task === 'classification') {
    if (out.shape.length !== 2)
      fail(
        `output tensor ${JSON.stringify(out.name)} has shape ${describe(out)}; a classifier needs [N, classes]`,
      );
    const k = out.shape[1];
    if (typeof k === 'number' && k >= 0 && k !== decl.labels.length)
      fail(
        `output tensor ${JSON.stringify(out.name)} has ${k} classes, model.json names ${decl.labels.length} labels`,
      );
  } else {
    if (out.shape.length !== 3 && out.shape.length !== 4)
      fail(
        `output tensor ${JSON.stringify(out.name)} has shape ${describe(out)}; a ${decl.task} model needs [N, C, H, W] or [N, H, W]`,
      );
    const c = out.shape.length === 4 ? out.shape[1] : 1;
    if (decl.task === 'heatmap' && typeof c === 'number' && c > 1)
      fail(`output tensor ${JSON.stringify(out.name)} has ${c} channels; a heatmap has one`);
    if (
      decl.task === 'segmentation' &&
      typeof c === 'number' &&
      c > 1 &&
      decl.labels.length > 0 &&
      c !== decl.labels.length
    )
      fail(
        `output tensor ${JSON.stringify(out.name)} has ${c} classes, model.json names ${decl.labels.length} labels`,
      );
  }

  function checkBatch(t: TensorInfo, role: string): void {
    const n = t.shape[0];
    if (typeof n === 'number' && n >= 0 && n < maxBatch)
      fail(
        `${role} tensor ${JSON.stringify(t.name)} has a fixed batch of ${n} (shape ${describe(t)}); export it with a dynamic batch dimension or set batching.maxBatch to ${n}`,
      );
  }
}
