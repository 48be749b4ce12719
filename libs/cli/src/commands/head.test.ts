import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildBundleFromHf } from '@curia/model';
import { readSafetensors, sharedPathOrSkip, toFloat32, writeSafetensors } from '@curia/tensors';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { registerHead } from './head.js';

const tinyDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
const headsDir = sharedPathOrSkip('reference/heads');

describe.runIf(tinyDir && headsDir)('curia head import / run', () => {
  let tmp = '';
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'curia-cli-head-'));
    await buildBundleFromHf(tinyDir!, join(tmp, 'bundle'));
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('imports the shared cls-linear-2d head and runs it to the reference logits', async () => {
    const program = new Command().exitOverride();
    registerHead(program);
    const headOut = join(tmp, 'cls-head');
    await program.parseAsync(['head', 'import', join(headsDir!, 'cls-linear-2d'), '--out', headOut], {
      from: 'user',
    });
    const vec = await readSafetensors(join(headsDir!, 'cls-linear-2d', 'vectors.safetensors'));
    const inPath = join(tmp, 'in.safetensors');
    await writeSafetensors(inPath, [['pixel_values', vec.tensors.get('pixel_values')!]]);
    const outPath = join(tmp, 'out.safetensors');
    await program.parseAsync(
      ['head', 'run', '--head', headOut, '--model', join(tmp, 'bundle'), '--in', inPath, '--out', outPath],
      { from: 'user' },
    );
    const got = toFloat32((await readSafetensors(outPath)).tensors.get('logits')!);
    const want = toFloat32(vec.tensors.get('logits')!);
    expect(got.length).toBe(want.length);
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]!)))).toBeLessThanOrEqual(1e-4);
  });
});
