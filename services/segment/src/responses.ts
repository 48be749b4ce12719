import type { common, segment } from '@curia/proto';
import {
  inputPlaneMask,
  type ClassAgreement,
  type ClassTable,
  type FinishedSlice,
  type InputLabelMap,
  type StudyGrid,
} from '@curia/segment';

type Response = segment.SegmentResponse;

/** The `geometry` message: grids and the classes results refer to. */
export function geometryMessage(geometry: common.CanonicalGeometry, table: ClassTable): Response {
  return {
    msg: {
      $case: 'geometry',
      value: { geometry, classes: table.classes.map((c) => ({ label: c.name, value: c.value })) },
    },
  };
}

/** A `slice` message for a finished canonical slice (masks on its input plane); null when it has no foreground. */
export function sliceMessage(
  f: FinishedSlice,
  labels: InputLabelMap,
  grid: StudyGrid,
  table: ClassTable,
): Response | null {
  const sums = new Float64Array(table.size);
  const counts = new Float64Array(table.size);
  const p = f.prediction;
  for (let i = 0; i < p.classes.length; i++) {
    const k = p.classes[i]!;
    sums[k]! += p.confidence[i]!;
    counts[k]!++;
  }
  const scores: segment.ClassScore[] = [];
  const masks: common.RunLengthMask[] = [];
  table.classes.forEach((c, i) => {
    const k = i + 1;
    if (counts[k] === 0) return;
    scores.push({ label: c.name, score: sums[k]! / counts[k]! });
    const m = inputPlaneMask(labels.voxels, grid, f.slice, c.value);
    if (m) masks.push({ dims: [...m.dims], counts: m.counts, label: c.name });
  });
  if (masks.length === 0) return null;
  const inputSliceIndex = grid.axes.slice.flip
    ? grid.inputDims[grid.axes.slice.inputAxis] - 1 - f.slice
    : f.slice;
  return {
    msg: {
      $case: 'slice',
      value: {
        mapping: { canonicalIndex: f.slice, inputSliceIndex, inputAxis: grid.axes.slice.inputAxis },
        scores,
        masks,
      },
    },
  };
}

/** Per-class results of a finished label map. */
export function classResults(labels: InputLabelMap, table: ClassTable): segment.SegmentClassResult[] {
  const { voxels, confidenceSum } = labels.totals;
  return table.classes.map((c, i) => {
    const n = voxels[i + 1]!;
    return {
      label: c.name,
      value: c.value,
      voxelCount: n,
      volumeMl: n * labels.voxelMl,
      score: n > 0 ? confidenceSum[i + 1]! / n : 0,
    };
  });
}

/** The summary's evaluation entries. */
export function evaluationOf(agreement: readonly ClassAgreement[]): segment.ClassEvaluation[] {
  return agreement.map((a) => ({
    label: a.name,
    value: a.value,
    dice: a.dice,
    ...(a.hd95Mm !== undefined ? { hd95Mm: a.hd95Mm } : {}),
    referenceVoxels: a.referenceVoxels,
    predictedVoxels: a.predictedVoxels,
  }));
}
