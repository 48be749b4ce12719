import type { ModelParts, RawInitializer } from '@curia/model';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';

/*
 * A minimal ONNX graph builder for head graphs. `@curia/model` builds its ViT with an equivalent
 * (unexported) GraphBuilder and exports only the model writer; this one emits the same
 * `ModelParts` so `encodeModel` from `@curia/model` serialises it.
 */

const onnx = onnxProto.onnx;
const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

/** ONNX opset of head graphs (17 = first with LayerNormalization). */
export const HEAD_GRAPH_OPSET = 17;

/** Operators of ORT's `com.microsoft` contrib domain used by head graphs. */
const CONTRIB_OPS: ReadonlySet<string> = new Set(['MultiHeadAttention']);

/** A node attribute: float, int, ints. */
export type AttrValue = { f: number } | { i: number } | { ints: readonly number[] };

function attribute(name: string, v: AttrValue): O.IAttributeProto {
  if ('f' in v) return { name, type: AttributeType.FLOAT, f: v.f };
  if ('i' in v) return { name, type: AttributeType.INT, i: v.i };
  return { name, type: AttributeType.INTS, ints: [...v.ints] };
}

/** Dimensions of a graph input or output: fixed sizes or symbolic names. */
export type Dims = readonly (number | string)[];

/** Accumulates the nodes and float32 / int64 initializers of one graph. */
export class HeadGraph {
  readonly nodes: O.INodeProto[] = [];
  readonly initializers: RawInitializer[] = [];
  private count = 0;

  private fresh(hint: string): string {
    this.count++;
    return `${hint}_${this.count}`;
  }

  /** Adds a single-output node; returns the output name (`out` when given). */
  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, out?: string): string {
    const output = out ?? this.fresh(op.toLowerCase());
    this.nodes.push({
      opType: op,
      ...(CONTRIB_OPS.has(op) ? { domain: 'com.microsoft' } : {}),
      name: this.fresh(`${op}_node`),
      input: [...inputs],
      output: [output],
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return output;
  }

  /** Adds a multi-output node. */
  ops(op: string, inputs: readonly string[], nOut: number, attrs: Record<string, AttrValue> = {}): string[] {
    const outputs = Array.from({ length: nOut }, () => this.fresh(op.toLowerCase()));
    this.nodes.push({
      opType: op,
      name: this.fresh(`${op}_node`),
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Adds a float32 initializer (the bytes are referenced, not copied). */
  float(hint: string, values: Float32Array, dims: readonly number[]): string {
    const name = this.fresh(hint);
    const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.initializers.push({ name, dataType: DataType.FLOAT, dims, data });
    return name;
  }

  /** Adds an int64 initializer (shapes, split sizes, axes). */
  int64(hint: string, values: readonly number[]): string {
    const name = this.fresh(hint);
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({
      name,
      dataType: DataType.INT64,
      dims: [values.length],
      data: new Uint8Array(arr.buffer),
    });
    return name;
  }

  /** The model with float32 inputs/outputs of the given (symbolic or fixed) dims. */
  model(name: string, inputs: readonly [string, Dims][], outputs: readonly [string, Dims][]): ModelParts {
    const info = ([n, dims]: [string, Dims]): O.IValueInfoProto => ({
      name: n,
      type: {
        tensorType: {
          elemType: DataType.FLOAT,
          shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
        },
      },
    });
    const usesMha = this.nodes.some((n) => n.domain === 'com.microsoft');
    return {
      model: {
        irVersion: 8,
        opsetImport: [
          { domain: '', version: HEAD_GRAPH_OPSET },
          ...(usesMha ? [{ domain: 'com.microsoft', version: 1 }] : []),
        ],
        producerName: '@curia/heads',
        producerVersion: '0',
        graph: null,
      },
      graph: { name, node: this.nodes, input: inputs.map(info), output: outputs.map(info) },
      initializers: this.initializers,
    };
  }
}

/** Row-major [rows, cols] → [cols, rows] (torch Linear [out, in] → MatMul right operand [in, out]). */
export function transpose2d(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c]!;
  }
  return out;
}
