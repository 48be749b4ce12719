import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { planAnalysis, sliceNeeds } from '../plan.js';
import { ALL_SLICES, sliceHead } from '../testing/heads.js';
import { restrictToMask } from './coverage.js';

const cls: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.F32,
};
const pooled: common.FeatureRequest = {
  kind: { $case: 'maskPooled', value: { prenorm: false } },
  dtype: common.DType.F32,
};

describe('restrictToMask', () => {
  const plan = planAnalysis({ embeddingOutputs: [pooled, cls], hasMask: true }, [
    sliceHead('roi', [pooled], ALL_SLICES, true),
    sliceHead('whole', [cls]),
    sliceHead('gate', [cls], ALL_SLICES, true), // requires a mask without pooling over it: reads covered slices only
  ]);
  const covered = new Set([2, 3]);

  it('gives mask consumers only the slices where the mask is non-empty', () => {
    const needs = restrictToMask(plan, sliceNeeds(plan, 6), (k) => covered.has(k), '512x512');
    expect(needs.maskOutputs).toEqual(new Set([0]));
    expect(needs.headSlices).toEqual([
      [2, 3],
      [0, 1, 2, 3, 4, 5],
      [2, 3],
    ]);
    // Every slice is still returned (cls), but mask-pooled features only where the mask is.
    expect([...needs.embeddingSlices].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(needs.outputs.get(2)).toEqual([0, 1]);
    expect(needs.outputs.get(0)).toEqual([1]);
    expect([...needs.emptyMask].sort()).toEqual([0, 1, 4, 5]);
  });

  it('drops returned slices with nothing left, and fails a mask head that reads no covered slice', () => {
    const onlyPooled = planAnalysis({ embeddingOutputs: [pooled], hasMask: true }, []);
    const needs = restrictToMask(onlyPooled, sliceNeeds(onlyPooled, 6), (k) => covered.has(k), '512x512');
    expect([...needs.embeddingSlices].sort()).toEqual([2, 3]);
    expect([...needs.outputs.keys()].sort()).toEqual([2, 3]);
    expect(needs.emptyMask.size).toBe(0);
    expect(() => restrictToMask(plan, sliceNeeds(plan, 6), () => false, '512x512')).toThrow(
      /start\.mask is empty on every slice head 'roi@1' reads \(6 slices, after resizing to 512x512\)/,
    );
  });
});
