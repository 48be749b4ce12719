import { open } from 'node:fs/promises';

import type { common } from '@curia/proto';

/** A file of a study on the local disk. */
export interface StudyFile {
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
}

/** Local files as upload chunks of `chunkBytes`, read as the consumer pulls them (never a whole file in memory). */
export async function* fileChunksOf(
  files: readonly StudyFile[],
  chunkBytes = 1024 * 1024,
): AsyncGenerator<common.FileChunk> {
  for (const f of files) {
    const handle = await open(f.path, 'r');
    try {
      let offset = 0;
      for (;;) {
        const buf = new Uint8Array(Math.min(chunkBytes, Math.max(f.bytes - offset, 0)) || 1);
        const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
        const last = offset + bytesRead >= f.bytes;
        yield { fileName: f.name, data: buf.subarray(0, bytesRead), lastChunk: last, offset };
        offset += bytesRead;
        if (last || bytesRead === 0) break;
      }
    } finally {
      await handle.close();
    }
  }
}

/** A response with a `oneof msg` (every Curia response stream). */
type OneofMessage = { readonly msg?: { readonly $case: string; readonly value: unknown } | undefined };

/** Handlers per message kind of a response stream. */
export type MessageHandlers<R extends OneofMessage> = {
  readonly [K in NonNullable<R['msg']>['$case']]?: (
    value: Extract<NonNullable<R['msg']>, { $case: K }>['value'],
  ) => void;
};

/** Reads a response stream to the end, handing each message to the handler of its kind. */
export async function onEachMessage<R extends OneofMessage>(
  responses: AsyncIterable<R>,
  handlers: MessageHandlers<R>,
): Promise<void> {
  for await (const r of responses) {
    const m = r.msg;
    if (!m) continue;
    const handle = (handlers as Record<string, ((v: unknown) => void) | undefined>)[m.$case];
    handle?.(m.value);
  }
}

/** The parts joined into one array (reassembles a file streamed in chunks). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
