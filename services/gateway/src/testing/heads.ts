import { common } from '@curia/proto';

/** Every slice of a study. */
export const ALL_SLICES: common.SliceSelection = { selection: { $case: 'all', value: {} } };

/**
 * A head `name@1` as HeadsService lists it (tests): a slice-level demo classifier that reads
 * `features` of `slices` and needs a region of interest when `requiresMask`.
 */
export function sliceHead(
  name: string,
  features: common.FeatureRequest[],
  slices: common.SliceSelection = ALL_SLICES,
  requiresMask = false,
): common.HeadInfo {
  return {
    name,
    version: '1',
    kind: common.HeadKind.LOGISTIC,
    task: common.HeadTask.CLASSIFICATION,
    labels: [],
    requirements: { features, slices, level: common.HeadInputLevel.SLICE, requiresMask },
    demo: true,
    model: '',
    modelSha256: '',
    description: '',
    unit: '',
    isDefault: false,
    promoted: true,
  };
}
