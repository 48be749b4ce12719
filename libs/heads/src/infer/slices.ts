import type { FeatureRequirement, HeadFeatures } from '../features.js';
import { invalid } from '../errors.js';

/**
 * Slice indices a volume head uses, as Curia's `_get_slice_range`: all slices, or the
 * `central` window around the middle slice (around the middle non-empty mask slice when the
 * head uses a mask); slices with an empty mask are dropped. Out-of-volume windows are rejected
 * (Curia would index past the volume).
 */
export function selectSlices(req: FeatureRequirement, f: HeadFeatures): number[] {
  const s = f.slices;
  let nonEmpty: (i: number) => boolean = () => true;
  if (req.mask) {
    const idx = req.inputs.findIndex((x) => x.kind === 'mask_pooled');
    const counts = f.blocks[idx]?.maskCounts;
    if (!counts) throw invalid('mask features lack per-slice mask counts');
    nonEmpty = (i) => counts[i]! > 0;
  }
  const candidates: number[] = [];
  if (req.slices === 'all' || req.slices === 'each') {
    for (let i = 0; i < s; i++) candidates.push(i);
  } else {
    const n = req.slices.central;
    let middle = Math.floor(s / 2);
    if (req.mask) {
      const ne: number[] = [];
      for (let i = 0; i < s; i++) if (nonEmpty(i)) ne.push(i);
      if (ne.length === 0) throw invalid('mask is empty on every slice of the volume');
      middle = ne[Math.floor((ne.length - 1) / 2)]!;
    }
    const start = middle - Math.floor(n / 2);
    if (start < 0 || start + n > s) {
      throw invalid(`volume has ${s} slices; the head needs ${n} central slices around slice ${middle}`);
    }
    for (let i = start; i < start + n; i++) candidates.push(i);
  }
  const picked = candidates.filter(nonEmpty);
  if (picked.length === 0) throw invalid('no slice of the volume has a non-empty mask');
  return picked;
}
