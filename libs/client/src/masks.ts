import type { common } from '@curia/proto';

/**
 * The region `inside(i, j, k)` of the input grid `dims` (i, j, k) as an RLE mask, the encoding
 * `AnalyzeStudyStart.mask.rle` takes: alternating run lengths starting with a 0-run, in C order
 * over (i, j, k), k fastest.
 */
export function runLengthMask(
  dims: readonly [number, number, number],
  inside: (i: number, j: number, k: number) => boolean,
  label = '',
): common.RunLengthMask {
  const [ni, nj, nk] = dims;
  const counts: number[] = [];
  let value = false;
  let run = 0;
  for (let i = 0; i < ni; i++)
    for (let j = 0; j < nj; j++)
      for (let k = 0; k < nk; k++) {
        const v = inside(i, j, k);
        if (v !== value) {
          counts.push(run);
          value = v;
          run = 0;
        }
        run++;
      }
  counts.push(run);
  return { dims: [ni, nj, nk], counts, label };
}
