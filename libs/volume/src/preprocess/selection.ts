import { CuriaError } from '@curia/errors';

/** Which canonical slices to preprocess. Indices count in canonical (inferior -> superior) order. */
export type SliceSelection =
  | { readonly kind: 'all' }
  | { readonly kind: 'indices'; readonly indices: readonly number[] }
  | { readonly kind: 'every'; readonly step: number; readonly offset?: number }
  | { readonly kind: 'central'; readonly count: number }
  | { readonly kind: 'union'; readonly parts: readonly SliceSelection[] };

/** Resolves a selection to explicit canonical indices (in the order they will be produced). */
export function resolveSelection(sel: SliceSelection | undefined, sliceCount: number): number[] {
  const s = sel ?? { kind: 'all' };
  switch (s.kind) {
    case 'all':
      return Array.from({ length: sliceCount }, (_, i) => i);
    case 'indices':
      if (s.indices.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'selection.indices is empty');
      for (const i of s.indices) {
        if (!Number.isInteger(i) || i < 0 || i >= sliceCount) {
          throw new CuriaError(
            'OUT_OF_RANGE',
            `selection index ${i} is outside 0..${sliceCount - 1} (canonical slices)`,
          );
        }
      }
      return [...s.indices];
    case 'every': {
      const offset = s.offset ?? 0;
      if (!Number.isInteger(s.step) || s.step < 1) {
        throw new CuriaError('INVALID_ARGUMENT', `selection.step is ${s.step}; must be an integer >= 1`);
      }
      if (!Number.isInteger(offset) || offset < 0 || offset >= sliceCount) {
        throw new CuriaError('OUT_OF_RANGE', `selection.offset ${offset} is outside 0..${sliceCount - 1}`);
      }
      const out: number[] = [];
      for (let i = offset; i < sliceCount; i += s.step) out.push(i);
      return out;
    }
    case 'central': {
      if (!Number.isInteger(s.count) || s.count < 1) {
        throw new CuriaError('INVALID_ARGUMENT', `selection.count is ${s.count}; must be an integer >= 1`);
      }
      const n = Math.min(s.count, sliceCount);
      const start = Math.floor((sliceCount - n) / 2);
      return Array.from({ length: n }, (_, i) => start + i);
    }
    case 'union': {
      if (s.parts.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'selection.parts is empty');
      const picked = new Set<number>();
      for (const part of s.parts) {
        if (part.kind === 'union') {
          throw new CuriaError('INVALID_ARGUMENT', 'selection.parts must not contain another union');
        }
        for (const i of resolveSelection(part, sliceCount)) picked.add(i);
      }
      return [...picked].sort((a, b) => a - b);
    }
    default:
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `selection.kind '${(s as { kind: unknown }).kind as string}' is unknown`,
      );
  }
}
