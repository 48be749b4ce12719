/**
 * Entry point of a {@link SlicePool} thread: decodes / gathers each task's input, runs
 * {@link processSlice} and writes the output in the requested dtype.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort, type MessagePort } from 'node:worker_threads';

import { isCuriaError } from '@curia/errors';
import { float32ToFloat16 } from '@curia/tensors';

import { decodeFrame } from '../dicom/pixel-data.js';
import { gatherSlice } from '../io/slice-gather.js';
import { KEEP_SCRATCH_BYTES, processSlice, SliceScratch } from './slice-kernel.js';
import { inputArray, type SliceAnswer, type SliceTask } from './slice-pool-protocol.js';

if (!parentPort) throw new Error('slice-worker-thread must run in a worker thread');
const port: MessagePort = parentPort;
const scratch = new SliceScratch();

async function rawOf(t: SliceTask): Promise<Float64Array> {
  const input = t.input;
  if (input.kind === 'raw') return input.raw;
  const voxels = input.kind === 'plane' ? input.voxels : await decodeFrame(input.encoded);
  const raw = scratch.input(t.rows * t.cols);
  gatherSlice(voxels, input.walk, t.rows, t.cols, input.slope, input.inter, raw);
  return raw;
}

async function run(t: SliceTask): Promise<SliceAnswer> {
  const n = t.spec.targetSize[0] * t.spec.targetSize[1];
  const raw = await rawOf(t);
  const { buffer, byteOffset, dtype } = t.out;
  if (dtype === 'F32') {
    const r = processSlice(raw, t.rows, t.cols, t.spec, scratch, new Float32Array(buffer, byteOffset, n));
    return { id: t.id, ok: true, input: t.input, out: t.out, rawStats: r.rawStats, stats: r.stats };
  }
  const r = processSlice(raw, t.rows, t.cols, t.spec, scratch, scratch.float32(n));
  float32ToFloat16(r.pixels, new Uint16Array(buffer, byteOffset, n));
  return { id: t.id, ok: true, input: t.input, out: t.out, rawStats: r.rawStats, stats: r.stats };
}

async function handle(t: SliceTask): Promise<void> {
  let answer: SliceAnswer;
  try {
    answer = await run(t);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    answer = { id: t.id, ok: false, message, ...(isCuriaError(e) ? { code: e.code } : {}) };
  }
  port.postMessage(answer, [inputArray(t.input).buffer as ArrayBuffer, t.out.buffer]);
  if (scratch.trim(KEEP_SCRATCH_BYTES) > 0) collectSoon();
}

let gc: (() => void) | undefined;
let collecting = false;

/**
 * Collects this thread's garbage once its queue is idle, after a huge slice: its scratch and
 * decoded frame (hundreds of MiB for an 8192² frame) would otherwise stay resident until the thread
 * next allocates, as an idle thread never collects. `gc` is exposed to a fresh context only, so
 * nothing else in the process sees it.
 */
function collectSoon(): void {
  if (collecting) return;
  collecting = true;
  setImmediate(() => {
    collecting = false;
    if (!gc) {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    }
    gc();
  });
}

// One task at a time (decoding awaits): the scratch buffers are shared by the tasks of a thread.
let queue = Promise.resolve();
port.on('message', (t: SliceTask) => {
  queue = queue.then(() => handle(t));
});
