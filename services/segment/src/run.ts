import { fileChunks } from '@curia/kit';
import type { segment } from '@curia/proto';
import {
  VolumeSegmentation,
  type ClassTable,
  type FinishedSlice,
  type ModelGrid,
  type SegmenterRunner,
  type StudyGrid,
} from '@curia/segment';

import { sliceMessage } from './responses.js';

type Response = segment.SegmentResponse;

/** A fitted head's segmentation of one study, scored by its ORT session. */
export function fittedSegmentation(
  runner: SegmenterRunner,
  o: {
    readonly grid: StudyGrid;
    readonly model: ModelGrid;
    readonly table: ClassTable;
    readonly keep: ReadonlySet<number> | undefined;
    readonly smooth: boolean;
  },
): VolumeSegmentation {
  return new VolumeSegmentation((t, n) => runner.scores(t, n), { ...o, scoreKind: 'logits' });
}

/** The `slice` messages of finished slices, when the caller asked for them. */
export function* slicesOut(
  finished: readonly FinishedSlice[],
  seg: VolumeSegmentation,
  grid: StudyGrid,
  table: ClassTable,
  output: segment.SegmentOutputOptions,
): Generator<Response> {
  if (!output.sliceMasks) return;
  for (const f of finished) {
    const msg = sliceMessage(f, seg.labels, grid, table);
    if (msg) yield msg;
  }
}

/** The label map as `mask_chunk` messages (unless the caller omitted it). */
export function* niftiOut(
  seg: VolumeSegmentation,
  output: segment.SegmentOutputOptions,
  timed: (stage: string, ms: number) => void,
): Generator<Response> {
  if (output.omitNiftiMask) return;
  const t = performance.now();
  const file = seg.labels.toNifti(output.gzip);
  timed('nifti', performance.now() - t);
  yield* fileChunks(file, output.gzip ? 'mask.nii.gz' : 'mask.nii', (c) => ({
    msg: { $case: 'maskChunk', value: c },
  }));
}
