// Writes tiny ONNX models for tests, with weights the test chooses, so inference outputs can be
// asserted exactly. Hand-encodes the protobuf ModelProto (onnx/onnx.proto3: ModelProto, GraphProto,
// NodeProto, TensorProto, ValueInfoProto, AttributeProto) — float tensors, int64 shape constants,
// symbolic dimensions (a dynamic batch `N`) and model metadata_props.
//
//   const bytes = onnxModel({ inputs: [input('x', [ 'N', 3, 8, 8 ])], outputs: [...], nodes: [...],
//                             initializers: [floatTensor('w', [1, 3, 1, 1], [1, 1, 1])] });

/** One protobuf field: wire type 0 (varint), 2 (bytes) or 5 (32-bit). */
class ProtoWriter {
  private readonly parts: Buffer[] = [];

  varint(field: number, value: number | bigint): this {
    this.tag(field, 0);
    this.parts.push(encodeVarint(BigInt(value)));
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.parts.push(encodeVarint(BigInt(data.length)), Buffer.from(data));
    return this;
  }

  string(field: number, text: string): this {
    return this.bytes(field, Buffer.from(text, 'utf8'));
  }

  message(field: number, message: ProtoWriter): this {
    return this.bytes(field, message.finish());
  }

  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(value);
    this.parts.push(b);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }

  private tag(field: number, wire: number): void {
    this.parts.push(encodeVarint(BigInt((field << 3) | wire)));
  }
}

function encodeVarint(value: bigint): Buffer {
  // Negative int64 values are encoded as their 64-bit two's complement (10 bytes).
  let v = value < 0n ? value + (1n << 64n) : value;
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return Buffer.from(out);
}

/** TensorProto.DataType values used here. */
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;

export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: number;
  /** undefined = no shape given. */
  shape?: Dim[];
}

export interface Tensor {
  name: string;
  dims: number[];
  dataType: number;
  raw: Buffer;
}

export type Attribute =
  | { name: string; f: number }
  | { name: string; i: number }
  | { name: string; ints: number[] }
  | { name: string; floats: number[] }
  | { name: string; s: string };

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attributes?: Attribute[];
  name?: string;
}

export interface ModelSpec {
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  nodes: Node[];
  initializers?: Tensor[];
  /** Default opset 13. */
  opset?: number;
  /** ModelProto.metadata_props (shown by onnxruntime as custom metadata). */
  metadata?: Record<string, string>;
  graphName?: string;
}

/** A float32 graph input/output; `'N'` (any string) is a symbolic, dynamic dimension. */
export function floatValue(name: string, shape?: Dim[]): ValueInfo {
  return { name, elemType: FLOAT, shape };
}

/** An int32 graph input/output (SAM2's point labels). */
export function int32Value(name: string, shape?: Dim[]): ValueInfo {
  return { name, elemType: INT32, shape };
}

/** An int64 graph input/output; `[]` is a scalar. */
export function int64Value(name: string, shape?: Dim[]): ValueInfo {
  return { name, elemType: INT64, shape };
}

/** TensorProto.DataType codes, for Cast's `to` attribute. */
export const DATA_TYPE = { FLOAT, INT32, INT64 } as const;

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): Tensor {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count) throw new Error(`${name}: ${values.length} values for dims ${dims.join('x')}`);
  return { name, dims, dataType: FLOAT, raw: Buffer.from(Float32Array.from(values).buffer) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): Tensor {
  return { name, dims, dataType: INT64, raw: Buffer.from(BigInt64Array.from(values.map(BigInt)).buffer) };
}

export function node(op: string, inputs: string[], outputs: string[], attributes: Attribute[] = []): Node {
  return { op, inputs, outputs, attributes };
}

function tensorProto(t: Tensor): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  return w.varint(2, t.dataType).string(8, t.name).bytes(9, t.raw);
}

function valueInfoProto(v: ValueInfo): ProtoWriter {
  const tensorType = new ProtoWriter().varint(1, v.elemType);
  if (v.shape) {
    const shape = new ProtoWriter();
    for (const d of v.shape) {
      const dim = typeof d === 'number' ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

/** AttributeProto.AttributeType: FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7. */
function attributeProto(a: Attribute): ProtoWriter {
  const w = new ProtoWriter().string(1, a.name);
  if ('f' in a) return w.float(2, a.f).varint(20, 1);
  if ('i' in a) return w.varint(3, a.i).varint(20, 2);
  if ('s' in a) return w.string(4, a.s).varint(20, 3);
  if ('floats' in a) {
    for (const f of a.floats) w.float(7, f);
    return w.varint(20, 6);
  }
  for (const i of a.ints) w.varint(8, i);
  return w.varint(20, 7);
}

function nodeProto(n: Node, index: number): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name ?? `${n.op}_${index}`).string(4, n.op);
  for (const a of n.attributes ?? []) w.message(5, attributeProto(a));
  return w;
}

/** The serialized ModelProto (IR version 8). */
export function onnxModel(spec: ModelSpec): Buffer {
  const graph = new ProtoWriter();
  spec.nodes.forEach((n, i) => graph.message(1, nodeProto(n, i)));
  graph.string(2, spec.graphName ?? 'test');
  for (const t of spec.initializers ?? []) graph.message(5, tensorProto(t));
  for (const v of spec.inputs) graph.message(11, valueInfoProto(v));
  for (const v of spec.outputs) graph.message(12, valueInfoProto(v));
  const model = new ProtoWriter()
    .varint(1, 8)
    .string(2, 'medstream-test')
    .message(7, graph)
    .message(8, new ProtoWriter().string(1, '').varint(2, spec.opset ?? 13));
  for (const [key, value] of Object.entries(spec.metadata ?? {}))
    model.message(14, new ProtoWriter().string(1, key).string(2, value));
  return model.finish();
}

// Ready-made models the AI tests share -----------------------------------------------------

/**
 * A linear classifier over an NCHW image: GlobalAveragePool -> Flatten (Reshape) -> Gemm(W, b) ->
 * Softmax. `weights` is K x C (row k = class k), so scores = softmax(W · channelMeans + b).
 */
export function linearClassifier(options: {
  channels: number;
  size: number;
  weights: number[][];
  bias: number[];
  input?: string;
  output?: string;
  softmax?: boolean;
}): Buffer {
  const { channels: c, size, weights, bias } = options;
  const k = weights.length;
  const input = options.input ?? 'image';
  const output = options.output ?? 'scores';
  const last = options.softmax === false ? output : 'logits';
  const nodes = [
    node('GlobalAveragePool', [input], ['pooled']),
    node('Reshape', ['pooled', 'flat_shape'], ['flat']),
    node('Gemm', ['flat', 'W', 'b'], [last], [{ name: 'transB', i: 1 }]),
  ];
  if (options.softmax !== false) nodes.push(node('Softmax', ['logits'], [output], [{ name: 'axis', i: 1 }]));
  return onnxModel({
    inputs: [floatValue(input, ['N', c, size, size])],
    outputs: [floatValue(output, ['N', k])],
    nodes,
    initializers: [
      int64Tensor('flat_shape', [2], [-1, c]),
      floatTensor('W', [k, c], weights.flat()),
      floatTensor('b', [k], bias),
    ],
  });
}

/**
 * A 1x1 convolution plus sigmoid: out[n,0,y,x] = sigmoid(sum_c w[c] * in[n,c,y,x] + bias), an
 * NCHW heat map (or a binary segmentation) of the input's size.
 */
export function pointwiseConvSigmoid(options: {
  channels: number;
  size: number;
  weights: number[];
  bias: number;
  input?: string;
  output?: string;
}): Buffer {
  const { channels: c, size } = options;
  const input = options.input ?? 'image';
  const output = options.output ?? 'map';
  return onnxModel({
    inputs: [floatValue(input, ['N', c, size, size])],
    outputs: [floatValue(output, ['N', 1, size, size])],
    nodes: [node('Conv', [input, 'w', 'b'], ['z']), node('Sigmoid', ['z'], [output])],
    initializers: [floatTensor('w', [1, c, 1, 1], options.weights), floatTensor('b', [1], [options.bias])],
  });
}

/**
 * A small convolutional classifier for load tests: 3x3 Conv (3 -> F) + Relu, 3x3 Conv (F -> F) +
 * Relu, GlobalAveragePool, Gemm to `classes`, Softmax. Weights are a fixed pseudo-random
 * sequence so every run computes the same thing.
 */
export function convClassifier(options: { size: number; filters: number; classes: number }): Buffer {
  const { size, filters: f, classes: k } = options;
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31 - 0.5;
  };
  const values = (n: number) => Array.from({ length: n }, () => next() * 0.2);
  const pads = { name: 'pads', ints: [1, 1, 1, 1] };
  return onnxModel({
    inputs: [floatValue('image', ['N', 3, size, size])],
    outputs: [floatValue('scores', ['N', k])],
    nodes: [
      node('Conv', ['image', 'w1', 'b1'], ['c1'], [pads]),
      node('Relu', ['c1'], ['r1']),
      node('Conv', ['r1', 'w2', 'b2'], ['c2'], [pads]),
      node('Relu', ['c2'], ['r2']),
      node('GlobalAveragePool', ['r2'], ['p']),
      node('Reshape', ['p', 'shape'], ['flat']),
      node('Gemm', ['flat', 'W', 'b'], ['logits'], [{ name: 'transB', i: 1 }]),
      node('Softmax', ['logits'], ['scores'], [{ name: 'axis', i: 1 }]),
    ],
    initializers: [
      floatTensor('w1', [f, 3, 3, 3], values(f * 27)),
      floatTensor('b1', [f], values(f)),
      floatTensor('w2', [f, f, 3, 3], values(f * f * 9)),
      floatTensor('b2', [f], values(f)),
      int64Tensor('shape', [2], [-1, f]),
      floatTensor('W', [k, f], values(k * f)),
      floatTensor('b', [k], values(k)),
    ],
  });
}
