import { open, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { common, gateway } from '@curia/proto';

/** A file of a study on the local disk. */
export interface StudyFile {
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
}

/**
 * The files of a study at `path`: the file itself (NIfTI), or every regular file of a directory
 * (a DICOM series; hidden files skipped), sorted by name.
 */
export async function studyFiles(path: string): Promise<{ files: StudyFile[]; format: common.VolumeFormat }> {
  const s = await stat(path);
  if (!s.isDirectory()) {
    return {
      files: [{ name: basename(path), path, bytes: s.size }],
      format: /\.nii(\.gz)?$/i.test(path) ? common.VolumeFormat.NIFTI : common.VolumeFormat.AUTO,
    };
  }
  const files: StudyFile[] = [];
  for (const e of (await readdir(path, { withFileTypes: true })).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (!e.isFile() || e.name.startsWith('.')) continue;
    const p = join(path, e.name);
    files.push({ name: e.name, path: p, bytes: (await stat(p)).size });
  }
  if (files.length === 0) throw new Error(`${path} holds no files`);
  return { files, format: common.VolumeFormat.DICOM };
}

/** An AnalyzeStudy start without its source; unset fields take their proto defaults. */
export type AnalyzeStudyStartFields = Omit<
  Parameters<typeof gateway.AnalyzeStudyStart.fromPartial>[0],
  'source'
>;

/**
 * The AnalyzeStudy request stream for local files: `start` (with a `streamed` source describing
 * them), then each file in `chunkBytes` pieces, read as the call consumes them (never the whole
 * study in memory).
 */
export async function* studyUploadRequests(
  /** Everything but the source; unset fields take their proto defaults. */
  start: AnalyzeStudyStartFields,
  files: readonly StudyFile[],
  chunkBytes = 1024 * 1024,
): AsyncGenerator<gateway.AnalyzeStudyRequest> {
  const totalBytes = files.reduce((n, f) => n + f.bytes, 0);
  yield {
    msg: {
      $case: 'start',
      value: gateway.AnalyzeStudyStart.fromPartial({
        ...start,
        source: { $case: 'streamed', value: { fileCount: files.length, totalBytes } },
      }),
    },
  };
  for await (const chunk of fileChunksOf(files, chunkBytes)) yield { msg: { $case: 'chunk', value: chunk } };
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

/** Everything an AnalyzeStudy call returned, collected. */
export interface AnalysisResult {
  geometry: gateway.StudyGeometry | undefined;
  readonly embeddings: gateway.SliceEmbedding[];
  readonly heads: gateway.HeadResult[];
  summary: gateway.AnalysisSummary | undefined;
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

/** Reads an AnalyzeStudy response stream to the end, reporting progress events as they come. */
export async function collectAnalysis(
  responses: AsyncIterable<gateway.AnalyzeStudyResponse>,
  onProgress?: (p: common.Progress) => void,
): Promise<AnalysisResult> {
  const out: AnalysisResult = { geometry: undefined, embeddings: [], heads: [], summary: undefined };
  await onEachMessage(responses, {
    progress: (p) => onProgress?.(p),
    geometry: (g) => (out.geometry = g),
    embedding: (e) => out.embeddings.push(e),
    headResult: (h) => out.heads.push(h),
    done: (d) => (out.summary = d),
  });
  return out;
}
