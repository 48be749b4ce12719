import { describe, expect, it } from 'vitest';

import { selectRegistrationBackends, TS_BACKENDS } from './backends.js';
import { convexAdam } from './convex-adam.js';
import { OnnxCostVolume, selectCostVolumeBackend, TS_COST_VOLUME } from './cost-volume.js';
import type { GridField } from './field.js';
import { IDENTITY } from './grid.js';
import { OnnxMind, selectMindBackend, TS_MIND } from './mind.js';
import { ORT_FASTER_ON_CPU, type Closable, type HeavyStep, type SelectOptions } from './onnx-steps.js';
import { randomSmoothDisplacement, smoothRandomVolume } from './optim-testing.js';
import { registerVolumes } from './register-volumes.js';
import { OnnxSmoothing, selectSmoothingBackend, TS_SMOOTHING } from './smoothing.js';
import { obliqueGrid } from './testing.js';
import { OnnxWarp, selectWarpBackend, TS_WARP } from './voxel-warp.js';
import { warpImage } from './warp.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('registration backends', () => {
  const grid = obliqueGrid([40, 36, 28], 0, [3, 3, 3], [-60, -54, -42]);
  const moving = smoothRandomVolume(grid, 4, 31);
  const truth = randomSmoothDisplacement(grid, 32, { bumps: 4, amplitudeMm: 5, sigmaMm: 20 });
  const fixed: GridField = warpImage(moving, grid, IDENTITY, truth);
  const fixed0: GridField = { grid, channels: 1, data: fixed.data.slice(0, fixed.data.length / 4) };

  type Named = { readonly name: string };
  const steps: readonly [
    HeavyStep,
    (o: SelectOptions) => Promise<Named & Closable>,
    Named,
    abstract new () => Named,
  ][] = [
    ['costVolume', selectCostVolumeBackend, TS_COST_VOLUME, OnnxCostVolume],
    ['mind', selectMindBackend, TS_MIND, OnnxMind],
    ['smoothing', selectSmoothingBackend, TS_SMOOTHING, OnnxSmoothing],
    ['warp', selectWarpBackend, TS_WARP, OnnxWarp],
  ];
  it.each(steps)(
    '%s: ORT on CUDA when it loads, else as measured on CPU; or what it is told',
    async (step, select, ts, onnx) => {
      const auto = await select({ threads: 1 });
      if (auto === ts) expect(auto.name).toBe('typescript');
      else {
        expect(auto).toBeInstanceOf(onnx);
        // CUDA (named after its probe), or ORT on CPU for a step measured faster there (MIND-SSC).
        expect(ORT_FASTER_ON_CPU[step] ? ['onnx', 'onnx:cuda'] : ['onnx:cuda']).toContain(auto.name);
        await auto.close?.();
      }
      expect(await select({ prefer: 'typescript' })).toBe(ts);
      const forced = await select({ prefer: 'onnx', threads: 1 });
      expect(forced).toBeInstanceOf(onnx);
      await forced.close?.();
    },
  );

  it('selects all four steps at once: TypeScript, ONNX on CPU, or CUDA when it loads', async () => {
    const ts = await selectRegistrationBackends('typescript');
    expect(ts).toMatchObject(TS_BACKENDS);
    await ts.close();
    const onnx = await selectRegistrationBackends('onnx', { threads: 1 });
    expect(onnx.costVolume).toBeInstanceOf(OnnxCostVolume);
    expect(onnx.mind).toBeInstanceOf(OnnxMind);
    expect(onnx.smoothing).toBeInstanceOf(OnnxSmoothing);
    expect(onnx.warp).toBeInstanceOf(OnnxWarp);
    await onnx.close();
    const auto = await selectRegistrationBackends('auto', { threads: 1 });
    if (auto.costVolume === TS_COST_VOLUME) {
      // No CUDA: ORT on CPU where it is measured faster, TypeScript elsewhere.
      expect(auto).toMatchObject({
        costVolume: TS_COST_VOLUME,
        mind: expect.any(OnnxMind) as unknown,
        smoothing: expect.any(OnnxSmoothing) as unknown,
        warp: TS_WARP,
      });
      expect(ORT_FASTER_ON_CPU).toEqual({ costVolume: false, mind: true, smoothing: true, warp: false });
      await auto.mind.compute(fixed0);
      expect(auto.mind.name).toBe('onnx:cpu');
      expect(auto.device).toBe('cpu');
    } else {
      expect(auto.costVolume.name).toBe('onnx:cuda');
      expect(auto.device).toBe('cuda');
    }
    await auto.close();
    // Providers without CUDA: the CPU mix at once, no CUDA probe.
    const cpu = await selectRegistrationBackends('auto', { executionProviders: ['cpu'], threads: 1 });
    expect(cpu.device).toBe('cpu');
    expect(cpu.costVolume).toBe(TS_COST_VOLUME);
    expect(cpu.mind).toBeInstanceOf(OnnxMind);
    await cpu.close();
  });

  it('convexAdam gives the same field with every step on ORT (inverse consistency on)', async () => {
    const opts = { inverseConsistent: true, iterations: 20 } as const;
    const want = await convexAdam(fixed, moving, opts);
    const b = await selectRegistrationBackends('onnx', { threads: 1 });
    try {
      const got = await convexAdam(fixed, moving, { ...opts, ...b });
      for (const step of [b.costVolume, b.smoothing, b.warp]) expect(step.name).toBe('onnx:cpu');
      // float32 graphs against float64 TypeScript, in mm (3 mm grid, 5 mm warp): 6e-4 measured.
      expect(maxAbsDiff(got.data, want.data)).toBeLessThan(5e-3);
    } finally {
      await b.close();
    }
  });

  it('registerVolumes takes them through `backends`', async () => {
    const moving0: GridField = { grid, channels: 1, data: moving.data.slice(0, moving.data.length / 4) };
    const pair = [
      { image: fixed0, modality: 'ct' as const },
      { image: moving0, modality: 'ct' as const },
    ] as const;
    const deformable = { iterations: 10 };
    const want = await registerVolumes(...pair, { deformable });
    const b = await selectRegistrationBackends('onnx', { threads: 1 });
    try {
      const got = await registerVolumes(...pair, { deformable, backends: b });
      expect(b.mind.name).toBe('onnx:cpu');
      expect(b.costVolume.name).toBe('onnx:cpu');
      // MIND within 1e-5 leaves the affine search's answer as it was; 1.5e-3 mm measured for v.
      expect(maxAbsDiff(got.affine, want.affine)).toBeLessThan(1e-6);
      expect(maxAbsDiff(got.displacement!.data, want.displacement!.data)).toBeLessThan(1e-2);
    } finally {
      await b.close();
    }
  });
});
