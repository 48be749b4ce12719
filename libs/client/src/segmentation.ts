import type { common } from '@curia/proto';
import { segment } from '@curia/proto';

import { concatBytes, fileChunksOf, onEachMessage, type StudyFile } from './streams.js';

/** A Segment start without its source; unset fields take their proto defaults. */
export type SegmentStartFields = Omit<Parameters<typeof segment.SegmentStart.fromPartial>[0], 'source'>;

const streamed = (files: readonly StudyFile[]) =>
  ({
    $case: 'streamed',
    value: { fileCount: files.length, totalBytes: files.reduce((n, f) => n + f.bytes, 0) },
  }) as const;

/** The Segment request stream for local files: `start` (streamed source), then the files in chunks. */
export async function* segmentUploadRequests(
  start: SegmentStartFields,
  files: readonly StudyFile[],
  chunkBytes = 1024 * 1024,
): AsyncGenerator<segment.SegmentRequest> {
  yield {
    msg: { $case: 'start', value: segment.SegmentStart.fromPartial({ ...start, source: streamed(files) }) },
  };
  for await (const chunk of fileChunksOf(files, chunkBytes)) yield { msg: { $case: 'chunk', value: chunk } };
}

/** One labelled study of a Fit: its description (no source) and its local files. */
export interface FitStudyFiles {
  readonly study: Omit<Parameters<typeof segment.FitStudy.fromPartial>[0], 'source'>;
  readonly files: readonly StudyFile[];
}

/** The Fit request stream: `start`, then per study its `study` message and its files in chunks. */
export async function* fitUploadRequests(
  start: Parameters<typeof segment.FitStart.fromPartial>[0],
  studies: readonly FitStudyFiles[],
  chunkBytes = 1024 * 1024,
): AsyncGenerator<segment.FitRequest> {
  yield { msg: { $case: 'start', value: segment.FitStart.fromPartial(start) } };
  for (const s of studies) {
    yield {
      msg: { $case: 'study', value: segment.FitStudy.fromPartial({ ...s.study, source: streamed(s.files) }) },
    };
    for await (const chunk of fileChunksOf(s.files, chunkBytes))
      yield { msg: { $case: 'chunk', value: chunk } };
  }
}

/** Everything a Segment (or SegmentFeatures) call returned, collected; files are reassembled. */
export interface SegmentationResult {
  geometry: segment.SegmentGeometry | undefined;
  readonly slices: segment.SegmentedSlice[];
  /** The NIfTI label map (empty when omitted) and its file name. */
  mask: Uint8Array;
  maskFileName: string;
  /** The DICOM SEG object, when requested. */
  dicomSeg: Uint8Array;
  summary: segment.SegmentSummary | undefined;
}

/** Reads a Segment response stream to the end, reporting progress events as they come. */
export async function collectSegmentation(
  responses: AsyncIterable<segment.SegmentResponse>,
  onProgress?: (p: common.Progress) => void,
): Promise<SegmentationResult> {
  const out: SegmentationResult = {
    geometry: undefined,
    slices: [],
    mask: new Uint8Array(0),
    maskFileName: '',
    dicomSeg: new Uint8Array(0),
    summary: undefined,
  };
  const mask: Uint8Array[] = [];
  const seg: Uint8Array[] = [];
  await onEachMessage(responses, {
    progress: (p) => onProgress?.(p),
    geometry: (g) => (out.geometry = g),
    slice: (sl) => out.slices.push(sl),
    maskChunk: (c) => {
      mask.push(c.data);
      out.maskFileName = c.fileName;
    },
    dicomSegChunk: (c) => seg.push(c.data),
    done: (d) => (out.summary = d),
  });
  out.mask = concatBytes(mask);
  out.dicomSeg = concatBytes(seg);
  return out;
}
