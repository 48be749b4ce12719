/** Entry point of a {@link SlicePool} thread: runs {@link processSlice} on each task it receives. */
import { parentPort, type MessagePort } from 'node:worker_threads';

import { processSlice, SliceScratch } from './slice-kernel.js';
import type { SliceAnswer, SliceTask } from './slice-pool-protocol.js';

if (!parentPort) throw new Error('slice-worker-thread must run in a worker thread');
const port: MessagePort = parentPort;
const scratch = new SliceScratch();

port.on('message', (t: SliceTask) => {
  let answer: SliceAnswer;
  try {
    const r = processSlice(t.raw, t.rows, t.cols, t.spec, scratch);
    answer = { id: t.id, ok: true, raw: t.raw, ...r };
  } catch (e) {
    answer = { id: t.id, ok: false, message: e instanceof Error ? e.message : String(e) };
    port.postMessage(answer, [t.raw.buffer as ArrayBuffer]);
    return;
  }
  port.postMessage(answer, [answer.pixels.buffer as ArrayBuffer, t.raw.buffer as ArrayBuffer]);
});
