/**
 * Cost of the gateway's mask path against the pixel path it rides along with, measured in the same
 * run: decoding an RLE mask of a 512×512×S study, then per canonical slice the emptiness check and
 * the reorient + nearest resize to 512×512, versus the preprocess engine's per-slice work (resize,
 * z-score) on a slice of the same size. Run after `npm run build`:
 *   node services/gateway/dist/bench/mask-bench.js [slices=300]
 */
import { runLengthMask } from '@curia/client';
import type { common } from '@curia/proto';
import { CURIA_DEFAULT_PREPROCESS_SPEC, processSlice, SliceScratch } from '@curia/volume';

import { CanonicalMaskSampler } from '../mask/canonical-mask.js';
import { decodeInputMask } from '../mask/input-mask.js';

const slices = Number(process.argv[2] ?? 300);
const [ni, nj, nk] = [512, 512, slices];

/** An ellipsoid (about a liver's share of an abdominal volume) as C-order run lengths. */
function ellipsoidRle(): common.RunLengthMask {
  return runLengthMask(
    [ni, nj, nk],
    (i, j, k) => {
      const x = (i - 180) / 90;
      const y = (j - 260) / 110;
      const z = (k - nk * 0.6) / (nk * 0.25);
      return x * x + y * y + z * z <= 1;
    },
    'ellipsoid',
  );
}

const ms = (t0: number): number => performance.now() - t0;

async function main(): Promise<void> {
  const rle = ellipsoidRle();
  let t0 = performance.now();
  const mask = await decodeInputMask({ mask: { $case: 'rle', value: rle } }, { maxVoxels: ni * nj * nk });
  const decodeMs = ms(t0);
  // A DICOM-like LPS axial study: canonical axes are the input axes, none flipped.
  const geometry: common.CanonicalGeometry = {
    input: undefined,
    canonical: undefined,
    canonicalToInputAxes: [0, 1, 2],
    canonicalAxisFlipped: [false, false, false],
  };
  // Axis order for the sampler: C order (i, j, k) with k as slices; the stride walk is the same for any permutation.
  const sampler = new CanonicalMaskSampler(mask, geometry, 512, 512);
  t0 = performance.now();
  let covered = 0;
  for (let k = 0; k < nk; k++) if (sampler.covers(k)) covered++;
  const coversMs = ms(t0);
  const out = new Uint8Array(512 * 512);
  t0 = performance.now();
  for (let k = 0; k < nk; k++) sampler.sample(k, out);
  const sampleMs = ms(t0);

  const raw = new Float64Array(512 * 512);
  for (let p = 0; p < raw.length; p++) raw[p] = ((p * 2654435761) % 2000) - 1000;
  const scratch = new SliceScratch();
  const reps = Math.min(nk, 60);
  t0 = performance.now();
  for (let r = 0; r < reps; r++) processSlice(raw, 512, 512, CURIA_DEFAULT_PREPROCESS_SPEC, scratch);
  const pixelPerSlice = ms(t0) / reps;

  const perSlice = (coversMs + sampleMs) / nk;
  console.log(`study ${ni}x${nj}x${nk}, mask ${mask.inside} voxels inside, ${covered} slices covered`);
  console.log(`rle decode (once per study): ${decodeMs.toFixed(1)} ms (${rle.counts.length} runs)`);
  console.log(
    `per slice: covers ${(coversMs / nk).toFixed(3)} ms + reorient/nearest resize ${(sampleMs / nk).toFixed(3)} ms`,
  );
  console.log(`baseline: preprocess engine per slice (resize + z-score): ${pixelPerSlice.toFixed(3)} ms`);
  console.log(`ratio mask/pixel per slice: ${(perSlice / pixelPerSlice).toFixed(3)}`);
  console.log(
    `ratio decode/(pixel work of the whole study): ${(decodeMs / (pixelPerSlice * nk)).toFixed(3)}`,
  );
}

await main();
