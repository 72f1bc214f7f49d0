// Small builders over the `onnx-proto` message classes (protobufjs code generated from ONNX's
// onnx.proto, v1.10 schema: IR version <= 8, which covers every field we write). We only assemble
// plain message objects here; protobufjs does the wire encoding.

import onnxProto from "onnx-proto";

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.IModelProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const { INT, INTS } = onnx.AttributeProto.AttributeType;

/** A float32 initializer; `rawData` is the little-endian bytes, as the spec recommends. */
export function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  const n = dims.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`tensor ${name}: ${data.length} values for [${dims}]`);
  const bytes = new Uint8Array(n * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) view.setFloat32(i * 4, data[i], true);
  return { name, dims, dataType: FLOAT, rawData: bytes };
}

type AttrValue = number | number[];

/** A node; integer and integer-list attributes are all our operators need. */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attrs: Record<string, AttrValue> = {},
): NodeProto {
  const attribute = Object.entries(attrs).map(([key, v]) =>
    Array.isArray(v) ? { name: key, type: INTS, ints: v } : { name: key, type: INT, i: v }
  );
  return { opType, input: inputs, output: outputs, name, attribute };
}

/** A float32 graph input/output; a string dimension is symbolic (dynamic), e.g. "N". */
export function floatValueInfo(name: string, dims: (number | string)[], doc = ""): ValueInfoProto {
  return {
    name,
    docString: doc,
    type: {
      tensorType: {
        elemType: FLOAT,
        shape: {
          dim: dims.map((d) => typeof d === "string" ? { dimParam: d } : { dimValue: d }),
        },
      },
    },
  };
}

export function encodeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
