/**
 * Few-shot organ classification demo on the TotalSegmentator example CT (run from dist:
 * `node services/heads/dist/demo/fit-organs.js`). Uses the default demo bundle: RANDOM weights.
 */
import { join } from 'node:path';

import { EmbedEngine, ensureDefaultBundle } from '@curia/model';
import { sharedDir } from '@curia/tensors';

import { runOrganFewShot } from './organ-fewshot.js';

const shared = sharedDir();
if (!shared) {
  process.stderr.write('fit-organs needs ../shared (TotalSegmentator example data); it is not present\n');
  process.exit(2);
}
const data = join(shared, 'data', 'totalsegmentator');
const bundle = await ensureDefaultBundle();
const engine = await EmbedEngine.open(bundle, { intraOpThreads: 2 });
try {
  const t0 = performance.now();
  const r = await runOrganFewShot({
    ctPath: join(data, 'example_ct_sm.nii.gz'),
    segPath: join(data, 'example_seg.nii.gz'),
    labelsPath: join(data, 'labels_total.json'),
    engine,
  });
  const out = process.stdout;
  out.write(`bundle: ${bundle}\n`);
  out.write(
    'NOTE: the default bundle has RANDOM demo weights. These accuracies describe random features, NOT Curia.\n',
  );
  out.write(`organs (most voxels): ${r.organs.map((g) => `${g.name} (${g.voxels})`).join(', ')}\n`);
  out.write(
    `samples: ${r.trainSamples} train (even slices), ${r.testSamples} test (odd slices); mask-pooled post-LN features\n`,
  );
  out.write(
    `chance: ${(100 * r.chance).toFixed(1)}% uniform, ${(100 * r.majority).toFixed(1)}% majority class\n`,
  );
  out.write('examples/class  test accuracy (mean over draws)\n');
  for (const p of r.curve)
    out.write(`${String(p.perClass).padStart(14)}  ${(100 * p.accuracy).toFixed(1)}% (${p.draws} draws)\n`);
  out.write(`total ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
} finally {
  await engine.close();
}
