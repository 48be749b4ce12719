import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { common, gateway, type segment } from '@curia/proto';

import { collectSegmentation, type SegmentationResult } from './segmentation.js';
import { fileChunksOf, onEachMessage, type StudyFile } from './streams.js';

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
 * The AnalyzeStudy start of study `studyId` in `format`, with `fields` on top; every other field
 * takes its proto default.
 */
export function analyzeStudyStart(
  studyId: string,
  format: common.VolumeFormat,
  fields: AnalyzeStudyStartFields = {},
): AnalyzeStudyStartFields {
  return { header: { studyId, format }, ...fields };
}

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

/** Everything an AnalyzeStudy call returned, collected. */
export interface AnalysisResult {
  geometry: gateway.StudyGeometry | undefined;
  readonly embeddings: gateway.SliceEmbedding[];
  readonly heads: gateway.HeadResult[];
  /** Each segmentation head's answer, keyed as named in the request. */
  readonly segmentation: Record<string, SegmentationResult>;
  summary: gateway.AnalysisSummary | undefined;
}

/** Reads an AnalyzeStudy response stream to the end, reporting progress events as they come. */
export async function collectAnalysis(
  responses: AsyncIterable<gateway.AnalyzeStudyResponse>,
  onProgress?: (p: common.Progress) => void,
): Promise<AnalysisResult> {
  const out: AnalysisResult = {
    geometry: undefined,
    embeddings: [],
    heads: [],
    segmentation: {},
    summary: undefined,
  };
  const segments = new Map<string, segment.SegmentResponse[]>();
  await onEachMessage(responses, {
    progress: (p) => onProgress?.(p),
    geometry: (g) => (out.geometry = g),
    embedding: (e) => out.embeddings.push(e),
    headResult: (h) => out.heads.push(h),
    segmentation: (r) => {
      if (!r.response) return;
      const list = segments.get(r.head) ?? [];
      segments.set(r.head, [...list, r.response]);
    },
    done: (d) => (out.summary = d),
  });
  for (const [head, list] of segments) {
    out.segmentation[head] = await collectSegmentation(
      // eslint-disable-next-line @typescript-eslint/require-await -- replays collected messages
      (async function* () {
        yield* list;
      })(),
    );
  }
  return out;
}
