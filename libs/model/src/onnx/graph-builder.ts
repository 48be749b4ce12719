import { float32ToFloat16 } from '@curia/tensors';
import type { onnx as O } from 'onnx-proto';

import type { RawInitializer } from './model-writer.js';
import { onnx } from './proto.js';

/** Element type of the graph's floating-point compute. */
export type ComputeDType = 'f32' | 'f16';

/** An attribute value: number (INT when integral and `int` is implied by the op), list or string. */
export type AttrValue = { f: number } | { i: number } | { ints: readonly number[] } | { s: string };

const { DataType } = onnx.TensorProto;
const { AttributeType } = onnx.AttributeProto;

function attribute(name: string, v: AttrValue): O.IAttributeProto {
  if ('f' in v) return { name, type: AttributeType.FLOAT, f: v.f };
  if ('i' in v) return { name, type: AttributeType.INT, i: v.i };
  if ('ints' in v) return { name, type: AttributeType.INTS, ints: [...v.ints] };
  return { name, type: AttributeType.STRING, s: new TextEncoder().encode(v.s) };
}

/** ONNX TensorProto.DataType of a compute dtype. */
export function onnxFloatType(dtype: ComputeDType): number {
  return dtype === 'f16' ? DataType.FLOAT16 : DataType.FLOAT;
}

/**
 * Accumulates nodes and initializers of one ONNX graph with unique, readable value names.
 * Float initializers are stored in the graph's compute dtype.
 */
export class GraphBuilder {
  readonly nodes: O.INodeProto[] = [];
  readonly initializers: RawInitializer[] = [];
  private readonly used = new Set<string>();

  constructor(readonly dtype: ComputeDType) {}

  /** A fresh value name based on `hint`. */
  fresh(hint: string): string {
    let name = hint;
    for (let k = 1; this.used.has(name); k++) name = `${hint}_${k}`;
    this.used.add(name);
    return name;
  }

  /** Adds a node; returns its output names (fresh unless given). */
  node(
    op: string,
    inputs: readonly string[],
    opts: {
      outputs?: readonly string[];
      nOut?: number;
      attrs?: Record<string, AttrValue>;
      name?: string;
      domain?: string;
    } = {},
  ): string[] {
    const outputs = opts.outputs ? [...opts.outputs] : [];
    if (opts.outputs) for (const o of outputs) this.used.add(o);
    else for (let k = 0; k < (opts.nOut ?? 1); k++) outputs.push(this.fresh(`${opts.name ?? op}_out${k}`));
    this.nodes.push({
      opType: op,
      ...(opts.domain ? { domain: opts.domain } : {}),
      name: this.fresh(`${opts.name ?? op}_node`),
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Single-output convenience over {@link node}. */
  op(op: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, name?: string): string {
    const [out] = this.node(op, inputs, { attrs, name });
    return out!;
  }

  /** Adds a float initializer (converted to the compute dtype). */
  floatInit(name: string, values: Float32Array, dims: readonly number[]): string {
    const n = this.fresh(name);
    let data: Uint8Array;
    if (this.dtype === 'f16') {
      const bits = float32ToFloat16(values);
      data = new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
    } else {
      data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    }
    this.initializers.push({ name: n, dataType: onnxFloatType(this.dtype), dims, data });
    return n;
  }

  /** Adds an int64 initializer (shapes, axes, indices). */
  int64Init(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    const n = this.fresh(name);
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.initializers.push({ name: n, dataType: DataType.INT64, dims, data: new Uint8Array(arr.buffer) });
    return n;
  }

  /** Adds an int8 initializer (quantized weights, zero points). */
  int8Init(name: string, values: Int8Array, dims: readonly number[]): string {
    const n = this.fresh(name);
    const data = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    this.initializers.push({ name: n, dataType: DataType.INT8, dims, data });
    return n;
  }

  /** A scalar float constant in the compute dtype. */
  scalar(name: string, value: number): string {
    return this.floatInit(name, Float32Array.of(value), []);
  }
}

/** A graph input/output declaration with symbolic (string) or fixed (number) dims. */
export function valueInfo(
  name: string,
  elemType: number,
  dims: readonly (number | string)[],
): O.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
