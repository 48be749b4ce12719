/**
 * Label overlap of the registration bench: Dice per organ of the warped moving labels against the
 * fixed labels (both on the fixed grid, NIfTI order). Kidneys are scored per side and merged; the
 * headline mean is over spleen, kidneys (merged), liver and stomach.
 */

import { dice, TOTALSEGMENTATOR_ORGANS } from '@curia/volume';

/** The organs of issue #16 as `labels_total.json` names them. */
export const ORGANS = TOTALSEGMENTATOR_ORGANS;

/** The Dice rows the bench prints: every organ, and the kidneys merged after the left one. */
export const DICE_ROWS: readonly { readonly name: string; readonly values: readonly number[] }[] =
  ORGANS.flatMap((o) => [
    { name: o.name, values: [o.value] },
    ...(o.name === 'kidney_left' ? [{ name: 'kidneys', values: [2, 3] }] : []),
  ]);

/** The organs of the headline mean (kidneys merged). */
export const MEAN_ORGANS = ['spleen', 'kidneys', 'liver', 'stomach'] as const;

/** Dice per {@link DICE_ROWS} row, plus `mean` over {@link MEAN_ORGANS}. */
export function organDice(pred: ArrayLike<number>, truth: ArrayLike<number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of DICE_ROWS) out[r.name] = dice(pred, truth, r.values);
  out.mean = MEAN_ORGANS.reduce((s, o) => s + out[o]!, 0) / MEAN_ORGANS.length;
  return out;
}
