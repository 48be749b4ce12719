import { nearestSourceIndices } from '@curia/volume';

import type { ClassTable } from './classes.js';
import { tokenGridSize, type ModelGrid } from './grid.js';

/**
 * Class fractions of every token's footprint on one canonical slice: the slice's labels are
 * resized to the model grid by nearest neighbour (at the pixel centres the image resize uses), and
 * each token counts the classes of the patchSize² model pixels it covers. Returns G·G rows of K
 * fractions (token-major, row-major tokens), each row summing to 1.
 */
export function tokenFractions(
  labels: ArrayLike<number>,
  rows: number,
  cols: number,
  table: ClassTable,
  model: ModelGrid,
): Float32Array {
  const { imageSize: size, patchSize: p } = model;
  const g = tokenGridSize(model);
  const k = table.size;
  const rowSrc = nearestSourceIndices(rows, size);
  const colSrc = nearestSourceIndices(cols, size);
  const out = new Float32Array(g * g * k);
  const share = 1 / (p * p);
  for (let y = 0; y < size; y++) {
    const base = rowSrc[y]! * cols;
    const tokenRow = Math.floor(y / p) * g;
    for (let x = 0; x < size; x++) {
      const cls = table.indexOf(labels[base + colSrc[x]!]!);
      out[(tokenRow + Math.floor(x / p)) * k + cls]! += share;
    }
  }
  return out;
}
