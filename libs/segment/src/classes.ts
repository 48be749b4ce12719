import { CuriaError } from '@curia/errors';

/** A class of a label map: its voxel value (1..255) and name. Class index 0 is always background. */
export interface SegClass {
  readonly value: number;
  readonly name: string;
}

/**
 * The classes of a segmentation, in output order after background: index 0 is background (voxel
 * value 0), index i ≥ 1 is `classes[i - 1]`. `indexOf` maps a label value to its class index
 * (values not listed are background).
 */
export class ClassTable {
  readonly classes: readonly SegClass[];
  private readonly index = new Int16Array(256);

  constructor(classes: readonly SegClass[], field = 'classes') {
    if (classes.length === 0)
      throw new CuriaError('INVALID_ARGUMENT', `${field} is empty: name at least one class`);
    if (classes.length > 255)
      throw new CuriaError('INVALID_ARGUMENT', `${field} has ${classes.length} classes; at most 255`);
    const names = new Set<string>();
    classes.forEach((c, i) => {
      if (!Number.isInteger(c.value) || c.value < 1 || c.value > 255) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field}[${i}].value must be an integer in 1..255 (got ${c.value})`,
        );
      }
      if (this.index[c.value] !== 0) {
        throw new CuriaError('INVALID_ARGUMENT', `${field}[${i}]: value ${c.value} is listed twice`);
      }
      if (!c.name || names.has(c.name)) {
        throw new CuriaError('INVALID_ARGUMENT', `${field}[${i}].name must be non-empty and unique`);
      }
      names.add(c.name);
      this.index[c.value] = i + 1;
    });
    this.classes = classes;
  }

  /** Classes including background (K). */
  get size(): number {
    return this.classes.length + 1;
  }

  /** Class index of a label value (0 = background or not listed). */
  indexOf(value: number): number {
    return value >= 0 && value <= 255 ? this.index[value]! : 0;
  }

  /** Voxel value of class index `k` (0 for background). */
  valueOf(k: number): number {
    return k === 0 ? 0 : this.classes[k - 1]!.value;
  }
}
