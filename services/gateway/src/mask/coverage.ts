import { CuriaError } from '@curia/errors';

import type { AnalysisPlan, SliceNeeds } from '../plan.js';

/** {@link SliceNeeds} once the mask is known, plus which needed slices have an empty mask. */
export interface MaskedNeeds extends SliceNeeds {
  /** Needed canonical slices whose resized mask is empty (their mask-pooled outputs are not computed). */
  readonly emptyMask: ReadonlySet<number>;
  /** Positions in the plan's outputs of the mask-pooled outputs. */
  readonly maskOutputs: ReadonlySet<number>;
}

/**
 * Restricts what each consumer reads to where the region of interest is: a head that requires a
 * mask or reads a mask-pooled output reads only slices whose resized mask is non-empty (and fails
 * with INVALID_ARGUMENT when none is left); mask-pooled embedding outputs are dropped on slices
 * with an empty mask, and a returned slice with nothing left is not returned at all.
 */
export function restrictToMask(
  plan: AnalysisPlan,
  needs: SliceNeeds,
  covers: (canonicalIndex: number) => boolean,
  sizeNote: string,
): MaskedNeeds {
  const maskOutputs = new Set<number>();
  plan.outputs.forEach((f, i) => {
    if (f.kind?.$case === 'maskPooled') maskOutputs.add(i);
  });
  const coverage = new Map<number, boolean>();
  const covered = (k: number): boolean => {
    let c = coverage.get(k);
    if (c === undefined) coverage.set(k, (c = covers(k)));
    return c;
  };
  const outputs = new Map<number, Set<number>>();
  const need = (slice: number, idx: Iterable<number>): void => {
    let set = outputs.get(slice);
    if (!set) outputs.set(slice, (set = new Set()));
    for (const i of idx) set.add(i);
  };
  const embeddingSlices = new Set<number>();
  for (const s of needs.embeddingSlices) {
    const idx = covered(s) ? plan.embeddingIndex : plan.embeddingIndex.filter((o) => !maskOutputs.has(o));
    if (idx.length === 0) continue;
    embeddingSlices.add(s);
    need(s, idx);
  }
  const headSlices = plan.heads.map((h, i) => {
    const wanted = needs.headSlices[i]!;
    const usesMask =
      h.info.requirements?.requiresMask === true || h.outputIndex.some((o) => maskOutputs.has(o));
    const slices = usesMask ? wanted.filter(covered) : wanted;
    if (usesMask && slices.length === 0 && wanted.length > 0) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `start.mask is empty on every slice head '${h.ref}' reads (${wanted.length} slices, after resizing to ${sizeNote})`,
      );
    }
    for (const s of slices) need(s, h.outputIndex);
    return slices;
  });
  const frozen = new Map<number, readonly number[]>();
  const emptyMask = new Set<number>();
  for (const [s, set] of outputs) {
    frozen.set(
      s,
      [...set].sort((a, b) => a - b),
    );
    // Only mask-pooled outputs care (their slices need a placeholder mask); skip the scan otherwise.
    if (maskOutputs.size > 0 && !covered(s)) emptyMask.add(s);
  }
  return { outputs: frozen, headSlices, embeddingSlices, emptyMask, maskOutputs };
}
