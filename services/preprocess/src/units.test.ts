import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { sliceSelection, outputDType, checkStudyId } from './options.js';

describe('options', () => {
  it('maps selections, dtypes and study ids', () => {
    expect(sliceSelection({ selection: { $case: 'indices', value: { indices: [5, 1, 5] } } })).toEqual({
      kind: 'indices',
      indices: [1, 5],
    });
    expect(() => sliceSelection({ selection: { $case: 'everyKth', value: 0 } })).toThrow(/every_kth/);
    const central: common.SliceSelection = { selection: { $case: 'centralCount', value: 3 } };
    expect(sliceSelection({ selection: { $case: 'anyOf', value: { parts: [central] } } })).toEqual({
      kind: 'union',
      parts: [{ kind: 'central', count: 3 }],
    });
    const nested: common.SliceSelection = { selection: { $case: 'anyOf', value: { parts: [central] } } };
    expect(() => sliceSelection({ selection: { $case: 'anyOf', value: { parts: [nested] } } })).toThrow(
      /nest/,
    );
    expect(outputDType(common.DType.UNSPECIFIED)).toBe('F32');
    expect(() => outputDType(common.DType.BF16)).toThrow(/output_dtype/);
    expect(() => checkStudyId('John^Doe')).toThrow(/study_id/);
    expect(() => checkStudyId('study-42.a:b_c')).not.toThrow();
  });
});
