import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';
import { featureKey } from '@curia/stages';

import { planAnalysis, preprocessSelection, sliceNeeds } from './plan.js';
import { ALL_SLICES, sliceHead } from './testing/heads.js';

const cls: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.UNSPECIFIED,
};
const avg2pre: common.FeatureRequest = {
  kind: { $case: 'avgPooledTokens', value: { kernelSize: 2, prenorm: true } },
  dtype: common.DType.F32,
};
const tokensF16: common.FeatureRequest = {
  kind: { $case: 'patchTokens', value: { prenorm: false } },
  dtype: common.DType.F16,
};

/** A (D = 4, C = 2) projection of the patch tokens; fresh objects and buffers every call. */
const projected = (last = 2): common.FeatureRequest => ({
  kind: {
    $case: 'projectedTokens',
    value: {
      prenorm: false,
      basis: {
        dtype: common.DType.F32,
        shape: [4, 2],
        data: new Uint8Array(Float32Array.of(1, 0, 0, 1, 0.5, 0.5, -1, last).buffer),
      },
    },
  },
  dtype: common.DType.F16,
});

const central = (n: number): common.SliceSelection => ({ selection: { $case: 'centralCount', value: n } });

describe('planAnalysis', () => {
  it('merges identical requests (unspecified dtype = F32) and maps each consumer to the shared outputs', () => {
    expect(featureKey(cls)).toBe(featureKey({ ...cls, dtype: common.DType.F32 }));
    const plan = planAnalysis({ embeddingOutputs: [tokensF16, cls], hasMask: false }, [
      sliceHead('a', [cls]),
      sliceHead('b', [avg2pre, cls], central(3)),
    ]);
    expect(plan.outputs).toHaveLength(3);
    expect(plan.embeddingIndex).toEqual([0, 1]);
    expect(plan.heads.map((h) => h.outputIndex)).toEqual([[1], [2, 1]]);
    expect(plan.heads.map((h) => h.ref)).toEqual(['a@1', 'b@1']);
  });

  it('passes projected_tokens requests through, merging those with the same basis bytes', () => {
    const a = projected();
    const plan = planAnalysis({ embeddingOutputs: [a, projected(), projected(3), cls], hasMask: false }, [
      sliceHead('h', [cls]),
    ]);
    expect(plan.outputs).toHaveLength(3);
    expect(plan.outputs[0]).toBe(a); // sent to Embed as it came
    expect(plan.embeddingIndex).toEqual([0, 0, 1, 2]);
    expect(plan.heads[0]!.outputIndex).toEqual([2]);
    expect(plan.outputKeys[0]).toBe(featureKey(projected()));
    expect(plan.outputKeys[0]).not.toBe(plan.outputKeys[1]);
    expect(plan.usesMask).toBe(false);
    const noBasis: common.FeatureRequest = {
      kind: { $case: 'projectedTokens', value: { prenorm: false } },
      dtype: common.DType.F32,
    };
    expect(() => planAnalysis({ embeddingOutputs: [cls, noBasis], hasMask: false }, [])).toThrow(
      /embedding_outputs\[1\]: projected_tokens.basis is missing/,
    );
  });

  it('rejects what cannot be served, naming the culprit', () => {
    expect(() =>
      planAnalysis({ embeddingOutputs: [], hasMask: false }, [sliceHead('m', [cls], ALL_SLICES, true)]),
    ).toThrow(/head 'm@1' needs a region of interest/);
    const tooMany = Array.from({ length: 33 }, (_, i) => sliceHead(`h${i}`, [cls]));
    expect(() => planAnalysis({ embeddingOutputs: [], hasMask: false }, tooMany)).toThrow(/at most 32/);
    expect(() =>
      planAnalysis({ embeddingOutputs: [{ kind: undefined, dtype: 0 }], hasMask: false }, []),
    ).toThrow(/embedding_outputs\[0\]/);
  });
});

describe('slice planning', () => {
  it('asks Preprocess for the union of what heads and outputs read, and resolves per-slice needs', () => {
    const plan = planAnalysis(
      {
        embeddingOutputs: [tokensF16],
        embeddingSelection: { selection: { $case: 'indices', value: { indices: [9, 0] } } },
        hasMask: false,
      },
      [sliceHead('b', [cls], central(2))],
    );
    expect(preprocessSelection(plan)).toEqual({
      selection: {
        $case: 'anyOf',
        value: {
          parts: [
            { selection: { $case: 'indices', value: { indices: [0, 9] } } },
            { selection: { $case: 'centralCount', value: 2 } },
          ],
        },
      },
    });
    const needs = sliceNeeds(plan, 10);
    expect([...needs.outputs.keys()].sort((a, b) => a - b)).toEqual([0, 4, 5, 9]);
    expect(needs.outputs.get(0)).toEqual([0]);
    expect(needs.outputs.get(4)).toEqual([1]);
    expect(needs.headSlices).toEqual([[4, 5]]);
    expect([...needs.embeddingSlices]).toEqual([0, 9]);
    expect(() => sliceNeeds(plan, 5)).toThrow(/outside/);
  });

  it('collapses to all slices when any consumer reads all of them', () => {
    const plan = planAnalysis({ embeddingOutputs: [], hasMask: false }, [
      sliceHead('a', [cls]),
      sliceHead('b', [cls], central(2)),
    ]);
    expect(preprocessSelection(plan)).toEqual({ selection: { $case: 'all', value: {} } });
  });
});
