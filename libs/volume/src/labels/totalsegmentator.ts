/**
 * The abdominal organs the benchmarks and end-to-end tests score on the shared TotalSegmentator
 * example (`../shared/data/totalsegmentator/example_seg.nii.gz`), with their values and names as
 * its `labels_total.json` gives them.
 */
export const TOTALSEGMENTATOR_ORGANS = [
  { value: 1, name: 'spleen' },
  { value: 2, name: 'kidney_right' },
  { value: 3, name: 'kidney_left' },
  { value: 5, name: 'liver' },
  { value: 6, name: 'stomach' },
] as const;
