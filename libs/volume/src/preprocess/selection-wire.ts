import { CuriaError } from '@curia/errors';

import type { SliceSelection } from './selection.js';

/**
 * The wire form of a slice selection (`curia.common.v1.SliceSelection` as ts-proto decodes it),
 * typed structurally so this engine does not depend on the generated contract.
 */
export interface WireSliceSelection {
  readonly selection?:
    | { readonly $case: 'all'; readonly value: unknown }
    | { readonly $case: 'indices'; readonly value: { readonly indices: readonly number[] } }
    | { readonly $case: 'everyKth'; readonly value: number }
    | { readonly $case: 'centralCount'; readonly value: number }
    | { readonly $case: 'anyOf'; readonly value: { readonly parts: readonly WireSliceSelection[] } }
    | undefined;
}

/**
 * Most explicit slice indices one selection may list (the largest NIfTI-1 dim is 32767, and a
 * DICOM series has far fewer files): checked before the list is deduplicated or sorted, so a start
 * message of millions of indices costs no more than its decoding.
 */
export const MAX_SELECTION_INDICES = 32_768;

/** Most `any_of` parts one selection may combine. */
export const MAX_SELECTION_PARTS = 64;

/**
 * Maps a wire selection to the engine's (indices deduplicated and ascending). Unset = all.
 * `field` names the request field in error messages (e.g. `options.selection`).
 */
export function selectionFromWire(
  sel: WireSliceSelection | undefined,
  field = 'options.selection',
  nested = false,
): SliceSelection {
  const s = sel?.selection;
  if (!s) return { kind: 'all' };
  switch (s.$case) {
    case 'all':
      return { kind: 'all' };
    case 'indices': {
      const n = s.value.indices.length;
      if (n === 0) throw new CuriaError('INVALID_ARGUMENT', `${field}.indices.indices is empty`);
      if (n > MAX_SELECTION_INDICES)
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field}.indices.indices has ${n} entries; the cap is ${MAX_SELECTION_INDICES}`,
        );
      return { kind: 'indices', indices: [...new Set(s.value.indices)].sort((a, b) => a - b) };
    }
    case 'everyKth':
      if (s.value < 1) throw new CuriaError('INVALID_ARGUMENT', `${field}.every_kth must be >= 1`);
      return { kind: 'every', step: s.value };
    case 'centralCount':
      if (s.value < 1) throw new CuriaError('INVALID_ARGUMENT', `${field}.central_count must be >= 1`);
      return { kind: 'central', count: s.value };
    case 'anyOf': {
      if (nested) throw new CuriaError('INVALID_ARGUMENT', `${field}.any_of parts must not nest any_of`);
      if (s.value.parts.length === 0)
        throw new CuriaError('INVALID_ARGUMENT', `${field}.any_of.parts is empty`);
      if (s.value.parts.length > MAX_SELECTION_PARTS)
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field}.any_of.parts has ${s.value.parts.length} entries; the cap is ${MAX_SELECTION_PARTS}`,
        );
      return {
        kind: 'union',
        parts: s.value.parts.map((p) => selectionFromWire(p, `${field}.any_of.parts`, true)),
      };
    }
  }
}
