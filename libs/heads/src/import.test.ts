import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { CuriaError } from '@curia/errors';
import { thrownText as codeOf } from '@curia/errors/testing';
import { SafetensorsFile, sharedPathOrSkip } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { HeadFeatures } from './features.js';
import { fingerprintBackbone } from './fingerprint.js';
import { fitHead } from './fit/fit-head.js';
import type { Head } from './head.js';
import { checkBackboneCompatibility, loadHead, saveHead } from './head.js';
import { importCuriaHead, readCuriaHead } from './import-curia.js';
import { attentionWeightsOf } from './infer/run.js';
import { attentionModuleForward } from './math/attention.js';
import { slicePositionalEmbedding } from './math/positional.js';
import { Rng } from './math/rng.js';

const headsDir = sharedPathOrSkip('reference/heads');
const tinyDir = sharedPathOrSkip('reference/dinov2/tiny-mlp');
const swigluDir = sharedPathOrSkip('reference/dinov2/tiny-swiglu');

const tinyArch = {
  hidden_size: 96,
  num_layers: 2,
  patch_size: 16,
  image_size: 512,
  num_channels: 1,
  num_register_tokens: 0,
  ffn: 'mlp',
} as const;

/** A Curia head folder in tmp with an edited config and the reference weights linked in. */
async function variant(tmp: string, name: string, edit: Record<string, unknown>): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  const cfg = JSON.parse(await readFile(join(headsDir!, 'attn-3d', 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...cfg, ...edit }));
  await symlink(join(headsDir!, 'attn-3d', 'model.safetensors'), join(dir, 'model.safetensors'));
  return dir;
}

function randomFeatures(slices: number, tokens: number, d: number, seed: number): HeadFeatures {
  const rng = new Rng(seed);
  return {
    slices,
    hidden: d,
    blocks: [
      {
        data: Float32Array.from({ length: slices * tokens * d }, () => rng.normal()),
        tokensPerSlice: tokens,
      },
    ],
  };
}

describe.runIf(headsDir && tinyDir && swigluDir)('Curia head import', () => {
  let tmp = '';
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'curia-heads-import-'));
  });
  afterAll(async () => {
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('writes a native bundle with only head tensors and a backbone fingerprint', async () => {
    const out = join(tmp, 'attn');
    await importCuriaHead(join(headsDir!, 'attn-3d'), out);
    const head = await loadHead(out);
    expect(head.meta.kind).toBe('attention-3d');
    expect(head.meta.task).toBe('classification');
    expect(head.meta.labels).toEqual(['class_0', 'class_1', 'class_2']);
    expect(head.requirements()).toEqual({
      inputs: [{ kind: 'avg_pooled_tokens', k: 4, norm: 'pre' }],
      slices: 'all',
      mask: false,
      hidden: 96,
    });
    expect(head.meta.architecture.attention).toEqual({
      num_heads: 1,
      num_queries: 2,
      blocks: ['self', 'cross'],
    });
    const names = (await SafetensorsFile.open(join(out, 'weights.safetensors'))).names();
    expect(names.some((n) => n.startsWith('dino.'))).toBe(false);
    expect(names).toContain('attention_module.cross_attention.learned_queries');
    const headBytes = (await stat(join(out, 'weights.safetensors'))).size;
    const curiaBytes = (await stat(join(headsDir!, 'attn-3d', 'model.safetensors'))).size;
    console.log(`attn-3d: native weights ${headBytes} B vs Curia checkpoint ${curiaBytes} B`);
    expect(headBytes).toBeLessThan(curiaBytes / 3);
    const fp = head.meta.backbone!;
    expect(fp).toMatchObject({
      hidden_size: 96,
      num_layers: 2,
      patch_size: 16,
      num_channels: 1,
      num_patches: 1024,
      ffn: 'mlp',
    });
    const serving = await fingerprintBackbone(join(tinyDir!, 'model.safetensors'), '');
    expect(serving.header_sha256).toBe(fp.header_sha256);
    expect(serving.sample_sha256).toBe(fp.sample_sha256);

    const cls = await readCuriaHead(join(headsDir!, 'cls-linear-2d'));
    expect(cls.requirements()).toEqual({
      inputs: [{ kind: 'cls', norm: 'post' }],
      slices: 'each',
      mask: false,
      hidden: 96,
    });
    const mask = await readCuriaHead(join(headsDir!, 'mask-linear-2d'), { input: 'mask' });
    expect(mask.requirements().inputs).toEqual([{ kind: 'mask_pooled', norm: 'post', weighting: 'mask' }]);
  });

  it('checks backbone compatibility: tiny-mlp passes, other architectures or weights fail', async () => {
    const head = await readCuriaHead(join(headsDir!, 'cls-linear-2d'));
    const serving = await fingerprintBackbone(join(tinyDir!, 'model.safetensors'), '');
    expect(codeOf(() => checkBackboneCompatibility(head, tinyArch, serving))).toBeUndefined();
    const big = codeOf(() =>
      checkBackboneCompatibility(head, { ...tinyArch, hidden_size: 768, num_layers: 12 }),
    );
    expect(big).toMatch(
      /^FAILED_PRECONDITION: .*hidden_size: head 96 vs serving 768.*num_layers: head 2 vs serving 12/,
    );
    expect(codeOf(() => checkBackboneCompatibility(head, { ...tinyArch, patch_size: 8 }))).toMatch(
      /FAILED_PRECONDITION.*patch_size.*num_patches/,
    );
    const swiglu = await fingerprintBackbone(join(swigluDir!, 'model.safetensors'), '');
    expect(codeOf(() => checkBackboneCompatibility(head, tinyArch, swiglu))).toMatch(
      /FAILED_PRECONDITION.*header_sha256.*sample_sha256/,
    );
  });

  it('rejects Curia configurations it cannot run faithfully with UNIMPLEMENTED', async () => {
    for (const [name, edit] of [
      ['cls-avg', { use_class_token: true, use_avgpool_per_slice: true }],
      ['attn-volume', { use_avgpool_on_the_volume: true }],
      ['tokens-no-attn', { attention_cfg: null }],
    ] as const) {
      const dir = await variant(tmp, name, edit);
      const e = await readCuriaHead(dir).catch((err: unknown) => err);
      expect((e as CuriaError).code, name).toBe('UNIMPLEMENTED');
    }
    const bad = await variant(tmp, 'bad-type', { model_type: 'dinov2' });
    expect(((await readCuriaHead(bad).catch((err: unknown) => err)) as CuriaError).code).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('kernel_size: null = all tokens, 0 ignored where Curia ignores it, rejected where Curia pools with it', async () => {
    const full = await readCuriaHead(await variant(tmp, 'k-null', { kernel_size: null }));
    expect(full.requirements().inputs).toEqual([{ kind: 'avg_pooled_tokens', k: 1, norm: 'pre' }]);
    // Raw-token attention pools with avg_pool2d(kernel_size=0): torch refuses, so do we.
    const e = (await readCuriaHead(await variant(tmp, 'k0-attn', { kernel_size: 0 })).catch(
      (err: unknown) => err,
    )) as CuriaError;
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/kernel_size=0.*avg_pool2d/);
    // Per-slice pooling (mask or not) and 2D heads never read kernel_size.
    const perSlice = await readCuriaHead(
      await variant(tmp, 'k0-per-slice', { kernel_size: 0, use_avgpool_per_slice: true }),
    );
    expect(perSlice.meta.kind).toBe('attention-3d');
    expect(perSlice.requirements().inputs).toEqual([{ kind: 'avg_pooled_tokens', k: 32, norm: 'pre' }]);
    const perSliceMask = await readCuriaHead(
      await variant(tmp, 'k0-per-slice-mask', { kernel_size: 0, use_avgpool_per_slice: true }),
      { input: 'mask' },
    );
    expect(perSliceMask.requirements().inputs).toEqual([
      { kind: 'mask_pooled', norm: 'pre', weighting: 'binary' },
    ]);
    const twoD = await readCuriaHead(await variant(tmp, 'k0-2d', { kernel_size: 0, attention_cfg: null }));
    expect(twoD.meta.kind).toBe('cls-linear');
    expect(twoD.requirements()).toMatchObject({ inputs: [{ kind: 'cls', norm: 'post' }], slices: 'each' });
  });

  it('use_n_blocks > 1: ignored on the mask path (Curia passes 1), INVALID_ARGUMENT elsewhere', async () => {
    const dir = await variant(tmp, 'nblocks', { use_n_blocks: 2, use_avgpool_per_slice: true });
    const e = (await readCuriaHead(dir).catch((err: unknown) => err)) as CuriaError;
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/use_n_blocks=2/);
    const masked = await readCuriaHead(dir, { input: 'mask' });
    expect(masked.requirements().inputs).toEqual([{ kind: 'mask_pooled', norm: 'pre', weighting: 'binary' }]);
  });

  it('use_class_token: the pre-LayerNorm CLS row leads each slice, with the slice position added', async () => {
    const head = await readCuriaHead(await variant(tmp, 'cls-token', { use_class_token: true }));
    expect(head.requirements().inputs).toEqual([
      { kind: 'cls', norm: 'pre' },
      { kind: 'avg_pooled_tokens', k: 4, norm: 'pre' },
    ]);
    const d = 96;
    const rng = new Rng(11);
    const slices = 3;
    const cls = Float32Array.from({ length: slices * d }, () => rng.normal());
    const tok = Float32Array.from({ length: slices * 4 * d }, () => rng.normal());
    const f: HeadFeatures = {
      slices,
      hidden: d,
      blocks: [
        { data: cls, tokensPerSlice: 1 },
        { data: tok, tokensPerSlice: 4 },
      ],
    };
    // Curia's sequence by hand: per slice [cls + pe(s), token_0 + pe(s), ..., token_3 + pe(s)].
    const pe = slicePositionalEmbedding(slices, d);
    const seq = new Float32Array(slices * 5 * d);
    for (let s = 0; s < slices; s++) {
      for (let t = 0; t < 5; t++) {
        const src =
          t === 0 ? cls.subarray(s * d, (s + 1) * d) : tok.subarray((s * 4 + t - 1) * d, (s * 4 + t) * d);
        for (let i = 0; i < d; i++) seq[(s * 5 + t) * d + i] = src[i]! + pe[s * d + i]!;
      }
    }
    const pooled = await attentionModuleForward(seq, slices * 5, attentionWeightsOf(head));
    const w = head.weight('classifier.weight').data;
    const b = head.weight('classifier.bias').data;
    const out = await head.run(f);
    for (let c = 0; c < 3; c++) {
      let z = b[c]!;
      for (let i = 0; i < d; i++) z += w[c * d + i]! * pooled[i]!;
      expect(Math.abs(out.logits[c]! - z)).toBeLessThanOrEqual(1e-5);
    }
    await head.release();
  });

  it('volume-mean head = classifier(mean of slice means), as a manual computation', async () => {
    const head = await readCuriaHead(
      await variant(tmp, 'vol', { attention_cfg: null, kernel_size: null, use_avgpool_on_the_volume: true }),
    );
    expect(head.meta.kind).toBe('volume-mean-linear');
    expect(head.requirements().inputs).toEqual([{ kind: 'avg_pooled_tokens', k: 32, norm: 'pre' }]);
    const f = randomFeatures(3, 1, 96, 4);
    const out = await head.run(f);
    const w = head.weight('classifier.weight').data;
    const b = head.weight('classifier.bias').data;
    for (let c = 0; c < 3; c++) {
      let s = b[c]!;
      for (let i = 0; i < 96; i++)
        s +=
          w[c * 96 + i]! *
          ((f.blocks[0]!.data[i]! + f.blocks[0]!.data[96 + i]! + f.blocks[0]!.data[192 + i]!) / 3);
      expect(out.logits[c]).toBeCloseTo(s, 4);
    }
  });

  it('3D mask heads weight slices by tokens under the mask and skip empty slices', async () => {
    const dir = await variant(tmp, 'vol-mask', {
      attention_cfg: null,
      kernel_size: null,
      use_avgpool_on_the_volume: true,
    });
    const head = await readCuriaHead(dir, { input: 'mask' });
    expect(head.requirements()).toMatchObject({
      inputs: [{ kind: 'mask_pooled', norm: 'pre', weighting: 'binary' }],
      mask: true,
    });
    const base = randomFeatures(3, 1, 96, 7);
    const f: HeadFeatures = {
      ...base,
      blocks: [{ ...base.blocks[0]!, maskCounts: Float64Array.of(2, 0, 6) }],
    };
    const out = await head.run(f);
    const x = f.blocks[0]!.data;
    const wt = head.weight('classifier.weight').data;
    const b = head.weight('classifier.bias').data;
    for (let c = 0; c < 3; c++) {
      let s = b[c]!;
      for (let i = 0; i < 96; i++) s += wt[c * 96 + i]! * ((2 * x[i]! + 6 * x[192 + i]!) / 8);
      expect(out.logits[c]).toBeCloseTo(s, 4);
    }
    const attn = await readCuriaHead(await variant(tmp, 'attn-mask', { use_avgpool_per_slice: true }), {
      input: 'mask',
    });
    expect(attn.meta.kind).toBe('attention-3d');
    // An empty slice is dropped before positions are assigned: same as running the non-empty slices alone.
    const kept: HeadFeatures = {
      slices: 2,
      hidden: 96,
      blocks: [
        {
          data: Float32Array.from([...x.subarray(0, 96), ...x.subarray(192, 288)]),
          tokensPerSlice: 1,
          maskCounts: Float64Array.of(2, 6),
        },
      ],
    };
    const a = await attn.run(f);
    const k = await attn.run(kept);
    for (let c = 0; c < 3; c++) expect(a.logits[c]).toBeCloseTo(k.logits[c]!, 6);
  });

  it('num_slices selects the central window of the volume', async () => {
    const central = await readCuriaHead(await variant(tmp, 'central', { num_slices: 3 }));
    expect(central.requirements().slices).toEqual({ central: 3 });
    const all = await readCuriaHead(join(headsDir!, 'attn-3d'));
    const f = randomFeatures(6, 4, 96, 5);
    // 6 slices: middle 3, window [2, 5).
    const inner: HeadFeatures = {
      slices: 3,
      hidden: 96,
      blocks: [{ data: f.blocks[0]!.data.slice(2 * 4 * 96, 5 * 4 * 96), tokensPerSlice: 4 }],
    };
    const a = await central.run(f);
    const b = await all.run(inner);
    for (let c = 0; c < 3; c++) expect(a.logits[c]).toBeCloseTo(b.logits[c]!, 6);
    await expect(central.run(randomFeatures(2, 4, 96, 6))).rejects.toThrow(
      /volume has 2 slices; the head needs 3 central slices/,
    );
  });

  it('mask heads reject an empty mask with INVALID_ARGUMENT', async () => {
    const head = await readCuriaHead(join(headsDir!, 'mask-linear-2d'), { input: 'mask' });
    const f: HeadFeatures = {
      slices: 2,
      hidden: 96,
      blocks: [{ data: new Float32Array(192), tokensPerSlice: 1, maskCounts: Float64Array.of(3, 0) }],
    };
    const e = (await head.run(f).catch((err: unknown) => err)) as CuriaError;
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/mask of slice 1 is empty/);
  });
});

describe('native bundle IO', () => {
  it('round-trips a fitted head and validates head.json with zod', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'curia-heads-io-'));
    try {
      const rng = new Rng(3);
      const n = 40;
      const data = Float32Array.from({ length: n * 3 }, () => rng.normal());
      const y = Array.from({ length: n }, (_, i) => (data[i * 3]! > 0 ? 1 : 0));
      const head: Head = await fitHead('logistic', { data, rows: n, cols: 3 }, y, {
        folds: 2,
        labelNames: ['neg', 'pos'],
        name: 'demo',
      });
      await saveHead(join(tmp, 'h'), head);
      const back = await loadHead(join(tmp, 'h'));
      expect(back.meta).toEqual(head.meta);
      const f: HeadFeatures = { slices: n, hidden: 3, blocks: [{ data, tokensPerSlice: 1 }] };
      expect([...(await back.run(f)).logits]).toEqual([...(await head.run(f)).logits]);
      const raw = JSON.parse(await readFile(join(tmp, 'h', 'head.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(join(tmp, 'h', 'head.json'), JSON.stringify({ ...raw, kind: 'bogus', labels: 3 }));
      const e = (await loadHead(join(tmp, 'h')).catch((err: unknown) => err)) as CuriaError;
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/kind.*labels|labels.*kind/s);
      expect(((await loadHead(join(tmp, 'missing')).catch((err: unknown) => err)) as CuriaError).code).toBe(
        'NOT_FOUND',
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
