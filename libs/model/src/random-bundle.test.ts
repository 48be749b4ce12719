import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { presetArchitecture } from './architecture.js';
import { buildRandomBundle, writeBundle } from './bundle/build.js';
import { ensureDefaultBundle } from './bundle/default-bundle.js';
import { EmbedEngine } from './engine.js';
import { clsToken, patchTokens } from './features.js';
import { mulberry32, randomWeights } from './random-weights.js';
import { tempDir } from './test-support/tmp.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await tempDir('random');
});
afterAll(async () => {
  await tmp.cleanup();
});

function randomPixels(n: number, seed: number): Float32Array {
  const u = mulberry32(seed);
  const px = new Float32Array(n);
  for (let i = 0; i < n; i++) px[i] = u() * 4 - 2;
  return px;
}

describe('random bundles', () => {
  it('are deterministic per seed, differ across seeds, and are labelled demo', async () => {
    const a = await buildRandomBundle(join(tmp.dir, 'a'), { preset: 'tiny', seed: 7 });
    const b = await buildRandomBundle(join(tmp.dir, 'b'), { preset: 'tiny', seed: 7 });
    const c = await buildRandomBundle(join(tmp.dir, 'c'), { preset: 'tiny', seed: 8 });
    expect(a.manifest.sha256).toBe(b.manifest.sha256);
    expect(c.manifest.sha256).not.toBe(a.manifest.sha256);
    expect(a.manifest.demo_weights).toBe(true);
    expect(a.manifest.name).toBe('tiny-demo');
    expect(a.manifest.provenance).toMatchObject({ source: 'random', seed: 7, preset: 'tiny' });
    const named = await buildRandomBundle(join(tmp.dir, 'd'), { preset: 'tiny', seed: 1, name: 'curia' });
    expect(named.manifest.name).toBe('curia-demo');
  });

  it('registers variant: HF token order, positions on CLS+patches only, registers excluded from patches', async () => {
    const arch = presetArchitecture('tiny', { num_register_tokens: 4 });
    // LayerScale 0 turns every block into the identity, so last_block_prenorm is the embedding
    // output and can be checked against a direct computation from the weights.
    const weights = randomWeights(arch, { seed: 11, layerScale: 0 });
    const dir = join(tmp.dir, 'regs');
    await writeBundle(dir, arch, weights, {
      name: 'regs-demo',
      version: '1',
      provenance: {
        source: 'random',
        seed: 11,
        created_at: new Date().toISOString(),
        builder_version: 'test',
      },
      demo: true,
    });
    const engine = await EmbedEngine.open(dir);
    try {
      const px = randomPixels(512 * 512, 5);
      const r = await engine.run(px, 1, { outputs: ['last_block_prenorm', 'last_hidden_state'] });
      const d = 96;
      expect([r.tokens, r.numRegisterTokens]).toEqual([1 + 4 + 1024, 4]);
      const seq = r.lastBlockPrenorm!;
      const pos = weights.get('embeddings.position_embeddings')!;
      const cls = weights.get('embeddings.cls_token')!;
      const regs = weights.get('embeddings.register_tokens')!;
      const convW = weights.get('embeddings.patch_embeddings.projection.weight')!;
      const convB = weights.get('embeddings.patch_embeddings.projection.bias')!;
      const layout = { tokens: r.tokens, hidden: d, numRegisterTokens: 4 };
      for (let c = 0; c < d; c++) expect(seq[c]).toBeCloseTo(cls[c]! + pos[c]!, 5);
      for (let k = 0; k < 4 * d; k++) expect(seq[d + k]).toBeCloseTo(regs[k]!, 5);
      const patches = patchTokens(seq, layout);
      expect(patches.length).toBe(1024 * d);
      expect(patches[0]).toBe(seq[5 * d]);
      for (const j of [0, 31, 517, 1023]) {
        const py = Math.floor(j / 32);
        const pxl = j % 32;
        for (const c of [0, 17, 95]) {
          let acc = convB[c]!;
          for (let y = 0; y < 16; y++)
            for (let x = 0; x < 16; x++)
              acc += convW[c * 256 + y * 16 + x]! * px[(py * 16 + y) * 512 + pxl * 16 + x]!;
          expect(patches[j * d + c]).toBeCloseTo(acc + pos[(1 + j) * d + c]!, 4);
        }
      }
      // Post-LN CLS is the LayerNorm of the pre-norm CLS (weight 1, bias 0).
      const pre = clsToken(seq, layout);
      const mean = pre.reduce((s, v) => s + v, 0) / d;
      const variance = pre.reduce((s, v) => s + (v - mean) ** 2, 0) / d;
      const post = clsToken(r.lastHiddenState!, layout);
      expect(post[3]).toBeCloseTo((pre[3]! - mean) / Math.sqrt(variance + 1e-6), 4);
    } finally {
      await engine.close();
    }
  });

  it('random outputs are non-degenerate (tokens differ, no NaN)', async () => {
    const dir = join(tmp.dir, 'nondegenerate');
    await buildRandomBundle(dir, {
      preset: 'tiny',
      seed: 2,
      overrides: { ffn: 'swiglu', num_register_tokens: 2 },
    });
    const engine = await EmbedEngine.open(dir);
    try {
      const r = await engine.run(randomPixels(512 * 512, 9), 1);
      const seq = r.lastHiddenState!;
      const layout = { tokens: r.tokens, hidden: r.hidden, numRegisterTokens: 2 };
      const p = patchTokens(seq, layout);
      let diff = 0;
      for (let c = 0; c < r.hidden; c++) diff += Math.abs(p[c]! - p[500 * r.hidden + c]!);
      expect(diff / r.hidden).toBeGreaterThan(0.05);
      expect(seq.every(Number.isFinite)).toBe(true);
    } finally {
      await engine.close();
    }
  });
});

describe('f16 graphs', () => {
  it('accept and return F32 through F16 graph I/O, close to the F32 graph', async () => {
    const f32 = join(tmp.dir, 'io-f32');
    const f16 = join(tmp.dir, 'io-f16');
    await buildRandomBundle(f32, { preset: 'tiny', seed: 4 });
    const built = await buildRandomBundle(f16, { preset: 'tiny', seed: 4, dtype: 'f16', ioDtype: 'f16' });
    expect(built.manifest).toMatchObject({ dtype: 'f16', io_dtype: 'f16' });
    const px = randomPixels(512 * 512, 6);
    const run = async (dir: string): Promise<Float32Array> => {
      const engine = await EmbedEngine.open(dir);
      try {
        return (await engine.run(px, 1)).lastHiddenState!;
      } finally {
        await engine.close();
      }
    };
    const a = await run(f32);
    const b = await run(f16);
    let m = 0;
    for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
    console.log(`F16 I/O graph vs F32 graph: max|diff| ${m.toExponential(2)}`);
    expect(b).toBeInstanceOf(Float32Array);
    expect(m).toBeLessThan(5e-2);
  });
});

describe('ensureDefaultBundle', () => {
  it('builds once, then reuses the cached bundle', async () => {
    const root = join(tmp.dir, 'cache');
    const t0 = performance.now();
    const [p1, p2] = await Promise.all([ensureDefaultBundle(root), ensureDefaultBundle(root)]);
    const first = performance.now() - t0;
    expect(p1).toBe(p2);
    const t1 = performance.now();
    const again = await ensureDefaultBundle(root);
    const second = performance.now() - t1;
    expect(again).toBe(p1);
    console.log(
      `ensureDefaultBundle: first ${first.toFixed(0)} ms (two concurrent callers), cached ${second.toFixed(0)} ms`,
    );
    expect(second).toBeLessThan(first);
    const engine = await EmbedEngine.open(again);
    try {
      const info = engine.info();
      expect(info).toMatchObject({ name: 'curia-demo', demoWeights: true, hidden: 192, tokens: 1025 });
      const { readdir } = await import('node:fs/promises');
      expect((await readdir(join(root, 'bundles'))).filter((f) => f.startsWith('.tmp'))).toEqual([]);
    } finally {
      await engine.close();
    }
  });
});
