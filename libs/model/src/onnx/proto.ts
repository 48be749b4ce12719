import onnxProto from 'onnx-proto';

/** The generated ONNX protobuf classes (protobufjs static code from `onnx-proto`, a CommonJS module). */
export const onnx = onnxProto.onnx;
