import { join } from 'node:path';

import { openTestBackbone, type TestBackbone } from '@curia/heads/testing';
import { sharedPathOrSkip } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { nearestResizeMask, runOrganFewShot } from './organ-fewshot.js';

const tinyDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
const data = sharedPathOrSkip('data/totalsegmentator');

it('nearestResizeMask picks the source pixel under each output pixel centre', () => {
  const src = Uint8Array.from([1, 2, 3, 4, 5, 6]); // 2 rows x 3 cols
  const out = nearestResizeMask(src, 2, 3, 4, 6);
  expect([...out.subarray(0, 6)]).toEqual([1, 1, 2, 2, 3, 3]);
  expect([...out.subarray(18, 24)]).toEqual([4, 4, 5, 5, 6, 6]);
});

describe.runIf(tinyDir && data)('organ few-shot pipeline (tiny-mlp backbone, real CT + labels)', () => {
  let backbone: TestBackbone | undefined;
  beforeAll(async () => {
    backbone = await openTestBackbone(tinyDir!, 'curia-organs');
  });
  afterAll(() => backbone?.close());

  it('runs end to end and beats half of chance', async () => {
    const r = await runOrganFewShot({
      ctPath: join(data!, 'example_ct_sm.nii.gz'),
      segPath: join(data!, 'example_seg.nii.gz'),
      labelsPath: join(data!, 'labels_total.json'),
      engine: backbone!.engine,
      organs: 4,
      budgets: [1, 2, 5],
      repeats: 2,
    });
    console.log(JSON.stringify({ ...r, organs: r.organs.map((g) => g.name) }));
    expect(r.organs).toHaveLength(4);
    expect(r.trainSamples).toBeGreaterThan(0);
    expect(r.testSamples).toBeGreaterThan(0);
    expect(r.curve.length).toBeGreaterThan(0);
    for (const p of r.curve) {
      expect(Number.isFinite(p.accuracy)).toBe(true);
      expect(p.accuracy).toBeGreaterThan(r.chance / 2);
      expect(p.accuracy).toBeLessThanOrEqual(1);
    }
  });
});
