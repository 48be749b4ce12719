import { describe, expect, it } from 'vitest';

import { common } from '@curia/proto';

import { analyzeStudyStart } from './study.js';

describe('analyzeStudyStart', () => {
  it('names the study and its format, the fields on top', () => {
    expect(analyzeStudyStart('s', common.VolumeFormat.NIFTI, { model: 'm@1' })).toEqual({
      header: { studyId: 's', format: common.VolumeFormat.NIFTI },
      model: 'm@1',
    });
  });
});
