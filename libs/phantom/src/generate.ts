import { CuriaError } from '@curia/errors';

import { paintAnatomy, PHANTOM_LABEL_NAMES } from './anatomy.js';
import { SliceCanvas } from './canvas.js';
import { phantomAffine } from './geometry.js';
import { addGaussianNoise } from './noise.js';
import { resolvePhantomOptions, type Phantom, type PhantomOptions } from './options.js';

/**
 * Generates a synthetic abdominal CT phantom: a body (fat rim, soft tissue) holding liver,
 * gallbladder, spleen, stomach and colon (with gas pockets), pancreas, kidneys (cortex brighter than
 * medulla), iliopsoas muscles, aorta and IVC (contrast), vertebrae with discs, canal and cord, plus
 * white Gaussian noise. Anatomy is fixed in patient mm (grid centre = world origin); the seed only
 * drives the noise, so equal options give identical bytes. Organ shapes are superellipsoids placed
 * anatomically (liver on the patient's right, spleen left, aorta anterior-left of the spine).
 * Throws INVALID_ARGUMENT / RESOURCE_EXHAUSTED on bad options and CANCELLED when `signal` fires.
 */
export function generatePhantom(opts: PhantomOptions = {}): Phantom {
  const o = resolvePhantomOptions(opts);
  const [nx, ny, nz] = o.size;
  const [sx, sy, sz] = o.spacing;
  const plane = nx * ny;
  const data = new Int16Array(plane * nz);
  const labels = new Uint8Array(plane * nz);
  const canvas = new SliceCanvas(nx, ny, sx, sy);
  const cz = (nz - 1) / 2;
  for (let k = 0; k < nz; k++) {
    if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'phantom generation was cancelled');
    paintAnatomy(canvas, (k - cz) * sz);
    const base = k * plane;
    if (o.orientation === 'LPS') {
      // The canvas is already in LPS storage order (u -> L, v -> P).
      data.set(canvas.hu, base);
      labels.set(canvas.labels, base);
    } else {
      // RAS storage flips both in-plane axes, which reverses the row-major slice.
      const hu = canvas.hu;
      const lab = canvas.labels;
      for (let t = 0, s = plane - 1; t < plane; t++, s--) {
        data[base + t] = hu[s]!;
        labels[base + t] = lab[s]!;
      }
    }
  }
  if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'phantom generation was cancelled');
  addGaussianNoise(data, o.noiseSigma, o.seed);
  return {
    data,
    labels,
    dims: o.size,
    spacing: o.spacing,
    affine: phantomAffine(o.size, o.spacing, o.orientation),
    orientation: o.orientation,
    labelNames: PHANTOM_LABEL_NAMES,
    seed: o.seed,
    noiseSigma: o.noiseSigma,
  };
}
