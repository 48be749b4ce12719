/** Entry point of a {@link SlicePool} thread: runs {@link processSlice} on each task it receives. */
import { parentPort, type MessagePort } from 'node:worker_threads';

import { float32ToFloat16 } from '@curia/tensors';

import { gatherSlice } from '../io/slice-gather.js';
import { processSlice, SliceScratch } from './slice-kernel.js';
import { inputArray, type SliceAnswer, type SliceTask } from './slice-pool-protocol.js';

if (!parentPort) throw new Error('slice-worker-thread must run in a worker thread');
const port: MessagePort = parentPort;
const scratch = new SliceScratch();
let gathered = new Float64Array(0);

function rawOf(t: SliceTask): Float64Array {
  const input = t.input;
  if (input.kind === 'raw') return input.raw;
  const n = t.rows * t.cols;
  if (gathered.length !== n) gathered = new Float64Array(n);
  gatherSlice(input.voxels, input.walk, t.rows, t.cols, input.slope, input.inter, gathered);
  return gathered;
}

function run(t: SliceTask): SliceAnswer {
  const n = t.spec.targetSize[0] * t.spec.targetSize[1];
  const raw = rawOf(t);
  const { buffer, byteOffset, dtype } = t.out;
  if (dtype === 'F32') {
    const r = processSlice(raw, t.rows, t.cols, t.spec, scratch, new Float32Array(buffer, byteOffset, n));
    return { id: t.id, ok: true, input: t.input, out: t.out, rawStats: r.rawStats, stats: r.stats };
  }
  const r = processSlice(raw, t.rows, t.cols, t.spec, scratch, scratch.float32(n));
  float32ToFloat16(r.pixels, new Uint16Array(buffer, byteOffset, n));
  return { id: t.id, ok: true, input: t.input, out: t.out, rawStats: r.rawStats, stats: r.stats };
}

port.on('message', (t: SliceTask) => {
  let answer: SliceAnswer;
  try {
    answer = run(t);
  } catch (e) {
    answer = { id: t.id, ok: false, message: e instanceof Error ? e.message : String(e) };
  }
  port.postMessage(answer, [inputArray(t.input).buffer as ArrayBuffer, t.out.buffer]);
});
