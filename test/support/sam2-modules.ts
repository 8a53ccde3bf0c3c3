// Tiny MedSAM2 model folders for the medsam2 engine's tests: the seven ONNX modules of the SAM2
// export layout (src/segment/medsam2.ts SAM2_MODULES) with the real tensor names, ranks and the
// real image size (512), but 16 hidden channels, a memory dim of 4 and pseudo-random weights.
// One choice is not random: the mask decoder's logits follow the mean brightness of the
// backbone_fpn_0 patch (bright = inside), and the object score is the largest logit, so a bright
// phantom gives masks to check and the object disappears where the phantom ends.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  DATA_TYPE,
  type Tensor,
  floatTensor,
  floatValue,
  int32Value,
  int64Tensor,
  int64Value,
  node,
  onnxModel,
} from './onnx-writer.js';

export const TINY_SAM2 = { size: 512, hidden: 16, memDim: 4, masks: 4, fpn0: 4, fpn1: 8 } as const;

function randomValues(seed: number): (n: number, scale?: number) => number[] {
  let s = seed;
  return (n, scale = 0.1) =>
    Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2 ** 31;
      return (s / 2 ** 31 - 0.5) * 2 * scale;
    });
}

export interface TinySam2Options {
  /** Renames tensors (old name -> new name) in every module, for the wrong-names tests. */
  rename?: Record<string, string>;
  /** Writes medsam2.json with these constants (default: tpos encodings, no_mem_embed, no_obj_ptr). */
  constants?: Record<string, unknown> | false;
  seed?: number;
}

/** Writes the seven modules (and medsam2.json) into `dir`; returns `dir`. */
export function writeTinySam2(dir: string, options: TinySam2Options = {}): string {
  mkdirSync(dir, { recursive: true });
  const { size, hidden: c, memDim: d, masks: m, fpn0, fpn1 } = TINY_SAM2;
  const h = size / 16;
  const rnd = randomValues(options.seed ?? 7);
  const name = (n: string) => options.rename?.[n] ?? n;
  const write = (file: string, spec: Parameters<typeof onnxModel>[0]) => {
    const renamed = {
      ...spec,
      inputs: spec.inputs.map((v) => ({ ...v, name: name(v.name) })),
      outputs: spec.outputs.map((v) => ({ ...v, name: name(v.name) })),
      nodes: spec.nodes.map((n) => ({ ...n, inputs: n.inputs.map(name), outputs: n.outputs.map(name) })),
    };
    writeFileSync(path.join(dir, file), onnxModel({ opset: 13, ...renamed }));
  };
  const stride = (s: number) => [
    { name: 'kernel_shape', ints: [s, s] },
    { name: 'strides', ints: [s, s] },
  ];
  const shape = (n: string, dims: number[]): Tensor => int64Tensor(n, [dims.length], dims);

  // Image encoder: strided convolutions of the normalised image.
  const fpn0Weights = rnd(fpn0 * 3 * 16);
  for (let i = 0; i < 48; i++) fpn0Weights[i] = 1 / 48; // channel 0 = patch mean brightness
  write('image_encoder.onnx', {
    inputs: [floatValue('input_image', [1, 3, size, size])],
    outputs: [
      floatValue('vision_features', [1, c, h, h]),
      floatValue('vision_pos_enc_0', [1, c, 4 * h, 4 * h]),
      floatValue('vision_pos_enc_1', [1, c, 2 * h, 2 * h]),
      floatValue('vision_pos_enc_2', [1, c, h, h]),
      floatValue('backbone_fpn_0', [1, fpn0, 4 * h, 4 * h]),
      floatValue('backbone_fpn_1', [1, fpn1, 2 * h, 2 * h]),
      floatValue('backbone_fpn_2', [1, c, h, h]),
    ],
    nodes: [
      node('Conv', ['input_image', 'wv', 'bv'], ['vision_features'], stride(16)),
      node('Identity', ['pos0'], ['vision_pos_enc_0']),
      node('Identity', ['pos1'], ['vision_pos_enc_1']),
      node('Identity', ['pos2'], ['vision_pos_enc_2']),
      node('Conv', ['input_image', 'w0'], ['backbone_fpn_0'], stride(4)),
      node('Conv', ['input_image', 'w1'], ['backbone_fpn_1'], stride(8)),
      node('Identity', ['vision_features'], ['backbone_fpn_2']),
    ],
    initializers: [
      floatTensor('wv', [c, 3, 16, 16], rnd(c * 3 * 256, 0.01)),
      floatTensor('bv', [c], rnd(c)),
      floatTensor('pos0', [1, c, 4 * h, 4 * h], rnd(c * 16 * h * h)),
      floatTensor('pos1', [1, c, 2 * h, 2 * h], rnd(c * 4 * h * h)),
      floatTensor('pos2', [1, c, h, h], rnd(c * h * h)),
      floatTensor('w0', [fpn0, 3, 4, 4], fpn0Weights),
      floatTensor('w1', [fpn1, 3, 8, 8], rnd(fpn1 * 3 * 64, 0.01)),
    ],
  });

  // Prompt encoder: points and labels to sparse tokens; dense embeddings and their PE constant.
  write('prompt_encoder.onnx', {
    inputs: [
      floatValue('coords', [1, 'N', 2]),
      int32Value('labels', [1, 'N']),
      floatValue('masks', [1, 'H', 'W']),
      int32Value('masks_enable', [1]),
    ],
    outputs: [
      floatValue('sparse_embeddings', [1, 'N', c]),
      floatValue('dense_embeddings', [1, c, h, h]),
      floatValue('dense_pe', [1, c, h, h]),
    ],
    nodes: [
      node('MatMul', ['coords', 'wc'], ['from_coords']),
      node('Cast', ['labels'], ['labels_f'], [{ name: 'to', i: DATA_TYPE.FLOAT }]),
      node('Unsqueeze', ['labels_f', 'axis2'], ['labels_3']),
      node('Mul', ['labels_3', 'wl'], ['from_labels']),
      node('Add', ['from_coords', 'from_labels'], ['sparse_embeddings']),
      node('Identity', ['dense'], ['dense_embeddings']),
      node('Identity', ['pe'], ['dense_pe']),
    ],
    initializers: [
      floatTensor('wc', [2, c], rnd(2 * c, 0.001)),
      int64Tensor('axis2', [1], [2]),
      floatTensor('wl', [1, 1, c], rnd(c)),
      floatTensor('dense', [1, c, h, h], rnd(c * h * h)),
      floatTensor('pe', [1, c, h, h], rnd(c * h * h)),
    ],
  });

  // Mask decoder: brightness logits at 4x the features, plus small feature-driven terms.
  const fine = new Array<number>(m * fpn0).fill(0);
  for (let i = 0; i < m; i++) fine[i * fpn0] = 4;
  write('mask_decoder.onnx', {
    inputs: [
      floatValue('image_embeddings', [1, c, h, h]),
      floatValue('image_pe', [1, c, h, h]),
      floatValue('sparse_prompt_embeddings', [1, 'N', c]),
      floatValue('dense_prompt_embeddings', [1, c, h, h]),
      floatValue('high_res_features1', [1, fpn0, 4 * h, 4 * h]),
      floatValue('high_res_features2', [1, fpn1, 2 * h, 2 * h]),
    ],
    outputs: [
      floatValue('masks', [1, m, 4 * h, 4 * h]),
      floatValue('iou_pred', [1, m]),
      floatValue('sam_tokens_out', [1, m, c]),
      floatValue('object_score_logits', [1, 1]),
    ],
    nodes: [
      node('Add', ['image_embeddings', 'dense_prompt_embeddings'], ['x0']),
      node('Add', ['x0', 'image_pe'], ['x']),
      node('ReduceMean', ['sparse_prompt_embeddings'], ['sp'], [{ name: 'axes', ints: [1] }]),
      node('Reshape', ['sp', 'to_c11'], ['gate']),
      node('Mul', ['x', 'gate'], ['gated']),
      node('Conv', ['gated', 'wm'], ['coarse']),
      node('Resize', ['coarse', '', 'up4'], ['coarse_up'], [{ name: 'mode', s: 'nearest' }]),
      node('Conv', ['high_res_features1', 'wf', 'bf'], ['fine']),
      node('Conv', ['high_res_features2', 'w2'], ['mid']),
      node('Resize', ['mid', '', 'up2'], ['mid_up'], [{ name: 'mode', s: 'nearest' }]),
      node('Add', ['fine', 'coarse_up'], ['m0']),
      node('Add', ['m0', 'mid_up'], ['masks']),
      node('GlobalAveragePool', ['masks'], ['mask_mean']),
      node('Reshape', ['mask_mean', 'to_1m'], ['mask_mean_flat']),
      node('Sigmoid', ['mask_mean_flat'], ['iou_pred']),
      node('GlobalAveragePool', ['x'], ['x_mean']),
      node('Reshape', ['x_mean', 'to_11c'], ['x_token']),
      node('Add', ['x_token', 'tokens'], ['sam_tokens_out']),
      node('ReduceMax', ['masks'], ['mask_max'], [{ name: 'keepdims', i: 0 }]),
      node('Reshape', ['mask_max', 'to_11'], ['object_score_logits']),
    ],
    initializers: [
      shape('to_c11', [1, c, 1, 1]),
      floatTensor('wm', [m, c, 1, 1], rnd(m * c, 0.01)),
      floatTensor('up4', [4], [1, 1, 4, 4]),
      floatTensor('up2', [4], [1, 1, 2, 2]),
      floatTensor('wf', [m, fpn0, 1, 1], fine),
      floatTensor('bf', [m], [0, 0.1, -0.1, 0.2]),
      floatTensor('w2', [m, fpn1, 1, 1], rnd(m * fpn1, 0.01)),
      shape('to_1m', [1, m]),
      shape('to_11c', [1, 1, c]),
      floatTensor('tokens', [1, m, c], rnd(m * c)),
      shape('to_11', [1, 1]),
    ],
  });

  // Memory attention: the current features plus a projection of the memory's mean.
  write('memory_attention.onnx', {
    inputs: [
      floatValue('curr', [h * h, 1, c]),
      floatValue('memory', ['L', 1, d]),
      floatValue('curr_pos', [h * h, 1, c]),
      floatValue('memory_pos', ['L', 1, d]),
      int64Value('num_obj_ptr_tokens', []),
    ],
    outputs: [floatValue('pix_feat_with_mem', [h * h, 1, c])],
    nodes: [
      node('Add', ['memory', 'memory_pos'], ['mem']),
      node('ReduceMean', ['mem'], ['mem_mean'], [{ name: 'axes', ints: [0] }]),
      node('MatMul', ['mem_mean', 'wa'], ['mem_proj']),
      node('Cast', ['num_obj_ptr_tokens'], ['n_f'], [{ name: 'to', i: DATA_TYPE.FLOAT }]),
      node('Mul', ['n_f', 'eps'], ['n_term']),
      node('Add', ['curr', 'mem_proj'], ['a0']),
      node('Add', ['a0', 'n_term'], ['pix_feat_with_mem']),
    ],
    initializers: [floatTensor('wa', [d, c], rnd(d * c)), floatTensor('eps', [], [1e-4])],
  });

  // Memory encoder: features and the downsampled mask to memDim channels.
  write('memory_encoder.onnx', {
    inputs: [floatValue('pix_feat', [1, c, h, h]), floatValue('masks', [1, 1, size, size])],
    outputs: [floatValue('maskmem_features', [1, d, h, h]), floatValue('maskmem_pos_enc', [1, d, h, h])],
    nodes: [
      node('Conv', ['pix_feat', 'we'], ['from_feat']),
      node('Conv', ['masks', 'wk'], ['from_mask'], stride(16)),
      node('Add', ['from_feat', 'from_mask'], ['maskmem_features']),
      node('Identity', ['mpos'], ['maskmem_pos_enc']),
    ],
    initializers: [
      floatTensor('we', [d, c, 1, 1], rnd(d * c)),
      floatTensor('wk', [d, 1, 16, 16], rnd(d * 256, 0.001)),
      floatTensor('mpos', [1, d, h, h], rnd(d * h * h)),
    ],
  });

  const gemm = (file: string, input: string, output: string, outDim: number, batch: number | string) =>
    write(file, {
      inputs: [floatValue(input, [batch, c])],
      outputs: [floatValue(output, [batch, outDim])],
      nodes: [node('Gemm', [input, 'w', 'b'], [output], [{ name: 'transB', i: 1 }])],
      initializers: [floatTensor('w', [outDim, c], rnd(outDim * c)), floatTensor('b', [outDim], rnd(outDim))],
    });
  gemm('mlp.onnx', 'x', 'obj_ptr', c, 1);
  gemm('obj_ptr_tpos_proj.onnx', 'x', 'obj_ptr_tpos', d, 'N');

  if (options.constants !== false) {
    const constants = options.constants ?? {
      image_size: size,
      num_maskmem: 7,
      maskmem_tpos_enc: Array.from({ length: 7 }, () => rnd(d)),
      no_mem_embed: rnd(c),
      no_obj_ptr: rnd(c),
    };
    writeFileSync(path.join(dir, 'medsam2.json'), JSON.stringify(constants));
  }
  return dir;
}
