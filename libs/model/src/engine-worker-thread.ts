/**
 * Entry point of the thread behind {@link WorkerEmbedEngine}: owns one {@link EmbedEngine} and
 * answers `run` messages one at a time. onnxruntime-node's `run` is synchronous on the calling
 * thread, so hosting the session here keeps the caller's event loop free while a batch computes.
 */
import { parentPort, type MessagePort } from 'node:worker_threads';

import { isCuriaError } from '@curia/errors';

import { EmbedEngine } from './engine.js';
import type { FromEngineThread, ToEngineThread, WireError } from './engine-worker-protocol.js';

function wire(e: unknown): WireError {
  if (isCuriaError(e)) return { code: e.code, message: e.message };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

/** The array itself when it spans its whole buffer (transferable as is), else a compact copy. */
function own(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

if (!parentPort) throw new Error('engine-worker-thread must run in a worker thread');
const port: MessagePort = parentPort;
let engine: EmbedEngine | null = null;

const send = (m: FromEngineThread, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);

port.on('message', (m: ToEngineThread) => {
  void handle(m);
});

async function handle(m: ToEngineThread): Promise<void> {
  switch (m.kind) {
    case 'open':
      try {
        engine = await EmbedEngine.open(m.bundleDir, m.options);
        send({ kind: 'opened', info: engine.info(), bundle: engine.bundle });
      } catch (e) {
        send({ kind: 'error', id: -1, error: wire(e) });
      }
      return;
    case 'run':
      try {
        if (!engine) throw new Error('engine thread received run before open');
        const r = await engine.run(m.pixels, m.batch, { outputs: m.outputs, inputChecked: m.inputChecked });
        const lhs = r.lastHiddenState ? own(r.lastHiddenState) : undefined;
        const pre = r.lastBlockPrenorm ? own(r.lastBlockPrenorm) : undefined;
        const transfer: ArrayBuffer[] = [];
        if (lhs) transfer.push(lhs.buffer as ArrayBuffer);
        if (pre && pre.buffer !== lhs?.buffer) transfer.push(pre.buffer as ArrayBuffer);
        send(
          {
            kind: 'result',
            id: m.id,
            ...(lhs ? { lastHiddenState: lhs } : {}),
            ...(pre ? { lastBlockPrenorm: pre } : {}),
          },
          transfer,
        );
      } catch (e) {
        send({ kind: 'error', id: m.id, error: wire(e) });
      }
      return;
    case 'close':
      try {
        await engine?.close();
      } finally {
        engine = null;
        send({ kind: 'closed', id: m.id });
        port.close();
      }
      return;
  }
}
