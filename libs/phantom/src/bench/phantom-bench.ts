/**
 * Phantom generation benchmark (run from dist after `npm run build`):
 *   node libs/phantom/dist/bench/phantom-bench.js [nx,ny,nz]
 * Times generatePhantom, NIfTI encoding and one PNG preview at 512x512x120 (the e2e size) and
 * prints each as a ratio to a baseline measured in the same run: one mulberry32 draw per voxel
 * into an Int16Array (the floor for any seeded per-voxel noise).
 */
import { mulberry32 } from '@curia/tensors';

import { generatePhantom } from '../generate.js';
import { phantomImageNifti, phantomLabelsNifti } from '../nifti.js';
import { renderSlicePng } from '../png.js';
import { phantomDisplaySlice } from '../slices.js';

function time<T>(fn: () => T): [T, number] {
  const t = performance.now();
  const r = fn();
  return [r, performance.now() - t];
}

function best<T>(runs: number, fn: () => T): [T, number] {
  let out = time(fn);
  for (let i = 1; i < runs; i++) {
    const r = time(fn);
    if (r[1] < out[1]) out = r;
  }
  return out;
}

const size = (process.argv[2] ?? '512,512,120').split(',').map(Number) as [number, number, number];
const n = size[0] * size[1] * size[2];
const [, base] = best(3, () => {
  const v = new Int16Array(n);
  const rand = mulberry32(1);
  for (let i = 0; i < n; i++) v[i] = (rand() * 64) | 0;
  return v;
});
const [p, gen] = best(3, () => generatePhantom({ size }));
const [, clean] = best(3, () => generatePhantom({ size, noiseSigma: 0 }));
const [img, niiGz] = best(2, () => phantomImageNifti(p, { gzip: true }));
const [, niiRaw] = best(2, () => phantomImageNifti(p, { gzip: false }));
const [, labGz] = best(2, () => phantomLabelsNifti(p, { gzip: true }));
const [png, pngMs] = best(3, () => renderSlicePng(phantomDisplaySlice(p, size[2] >> 1)));

const row = (name: string, ms: number, extra = ''): void => {
  process.stdout.write(
    `${name.padEnd(34)} ${ms.toFixed(1).padStart(8)} ms  ${(ms / base).toFixed(2).padStart(6)}x baseline${extra}\n`,
  );
};
process.stdout.write(`phantom ${size.join('x')} (${(n / 1e6).toFixed(1)} M voxels), best of 2-3 runs\n`);
row('baseline: 1 PRNG draw per voxel', base);
row('generatePhantom (noise 15 HU)', gen);
row('generatePhantom (noise 0)', clean);
row('phantomImageNifti gzip level 1', niiGz, `  (${(img.length / 1e6).toFixed(1)} MB)`);
row('phantomImageNifti raw', niiRaw);
row('phantomLabelsNifti gzip level 1', labGz);
row('renderSlicePng (1 slice)', pngMs, `  (${(png.length / 1e3).toFixed(0)} kB)`);
