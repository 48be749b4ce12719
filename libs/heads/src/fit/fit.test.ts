import { CuriaError } from '@curia/errors';
import { describe, expect, it } from 'vitest';

import { Rng } from '../math/rng.js';
import { fitHead } from './fit-head.js';
import type { FeatureMatrix } from './data.js';

function rowsOf(data: number[][]): FeatureMatrix {
  return { data: Float32Array.from(data.flat()), rows: data.length, cols: data[0]!.length };
}

/** Three Gaussian blobs far apart on different axes: linearly separable. */
function blobs(n: number, d: number, k: number, seed: number): { x: FeatureMatrix; y: number[] } {
  const rng = new Rng(seed);
  const rows: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const c = i % k;
    rows.push(Array.from({ length: d }, (_, j) => rng.normal() * 0.5 + (j === c ? 6 : 0)));
    y.push(c);
  }
  return { x: rowsOf(rows), y };
}

async function expectInvalid(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CuriaError);
  expect((e as CuriaError).code).toBe('INVALID_ARGUMENT');
  expect((e as CuriaError).message).toMatch(pattern);
}

describe('logistic regression', () => {
  it('recovers a separable 3-class problem and predicts it through the head', async () => {
    const { x, y } = blobs(150, 6, 3, 1);
    const head = await fitHead('logistic', x, y, { seed: 3 });
    expect(head.meta.kind).toBe('cls-linear');
    expect(head.meta.training!.class_counts).toEqual([50, 50, 50]);
    const cv = head.meta.training!.cv!;
    expect(cv.folds).toBe(5);
    expect(cv.metrics.accuracy).toBe(1);
    expect(cv.metrics.balanced_accuracy).toBe(1);
    expect(cv.metrics.auc).toBe(1);
    const out = await head.run({
      slices: x.rows,
      hidden: x.cols,
      blocks: [{ data: Float32Array.from(x.data), tokensPerSlice: 1 }],
    });
    let ok = 0;
    for (let r = 0; r < x.rows; r++) {
      const p = out.probabilities!.subarray(r * 3, r * 3 + 3);
      if (p.indexOf(Math.max(...p)) === y[r]) ok++;
    }
    expect(ok).toBe(x.rows);
  });

  it('is deterministic for a seed', async () => {
    const { x, y } = blobs(60, 4, 2, 2);
    const a = await fitHead('logistic', x, y, { seed: 7 });
    const b = await fitHead('logistic', x, y, { seed: 7 });
    expect([...a.weight('classifier.weight').data]).toEqual([...b.weight('classifier.weight').data]);
    expect(a.meta.training!.cv).toEqual(b.meta.training!.cv);
  });

  it('has chance-level cross-validated AUC on random labels', async () => {
    const rng = new Rng(11);
    const n = 400;
    const x: FeatureMatrix = {
      data: Float32Array.from({ length: n * 8 }, () => rng.normal()),
      rows: n,
      cols: 8,
    };
    const y = Array.from({ length: n }, () => (rng.next() < 0.5 ? 0 : 1));
    const head = await fitHead('logistic', x, y, { seed: 1 });
    const auc = head.meta.training!.cv!.metrics.auc!;
    console.log(`random labels: CV AUC = ${auc.toFixed(3)}`);
    expect(Math.abs(auc - 0.5)).toBeLessThan(0.1);
  });

  it('balanced class weights raise minority recall on an imbalanced problem', async () => {
    const rng = new Rng(5);
    const rows: number[][] = [];
    const y: number[] = [];
    for (let i = 0; i < 300; i++) {
      const c = i % 10 === 0 ? 1 : 0;
      rows.push([rng.normal() + (c ? 1.2 : 0), rng.normal()]);
      y.push(c);
    }
    const x = rowsOf(rows);
    const plain = await fitHead('logistic', x, y, { folds: 0 });
    const bal = await fitHead('logistic', x, y, { folds: 0, classWeight: 'balanced' });
    const feats = {
      slices: x.rows,
      hidden: 2,
      blocks: [{ data: Float32Array.from(x.data), tokensPerSlice: 1 }],
    };
    const minority = async (h: typeof plain): Promise<number> => {
      const p = (await h.run(feats)).probabilities!;
      return y.reduce((s, c, r) => s + (c === 1 && p[r * 2 + 1]! > 0.5 ? 1 : 0), 0);
    };
    expect(await minority(bal)).toBeGreaterThan(await minority(plain));
    expect(bal.meta.training!.cv).toBeNull();
  });
});

/** Exponential baseline hazard λ0 = 0.1, hazard ratio exp(x·β), exponential censoring. */
function coxData(n: number, seed: number): { x: FeatureMatrix; time: Float64Array; event: Uint8Array } {
  const rng = new Rng(seed);
  const beta = [0.7, -0.5];
  const data = new Float32Array(n * 2);
  const time = new Float64Array(n);
  const event = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const a = rng.normal();
    const b = rng.normal();
    data[i * 2] = a;
    data[i * 2 + 1] = b;
    const rate = 0.1 * Math.exp(beta[0]! * data[i * 2]! + beta[1]! * data[i * 2 + 1]!);
    const t = -Math.log(1 - rng.next()) / rate;
    const c = -Math.log(1 - rng.next()) / 0.04;
    time[i] = Math.min(t, c);
    event[i] = t <= c ? 1 : 0;
  }
  return { x: { data, rows: n, cols: 2 }, time, event };
}

describe('Cox proportional hazards', () => {
  const { x, time, event } = coxData(2000, 42);

  it('recovers beta = [0.7, -0.5] within 0.1 with ~30% censoring, c-index > 0.6', async () => {
    const censored = 1 - event.reduce((a, b) => a + b, 0) / event.length;
    expect(censored).toBeGreaterThan(0.2);
    expect(censored).toBeLessThan(0.4);
    const head = await fitHead('cox', x, { time, event }, { seed: 1 });
    const w = head.weight('cox.weight').data;
    console.log(
      `cox: censoring ${(censored * 100).toFixed(1)}%, beta_hat = [${w[0]!.toFixed(4)}, ${w[1]!.toFixed(4)}], CV c-index ${head.meta.training!.cv!.metrics.c_index!.toFixed(3)}`,
    );
    expect(Math.abs(w[0]! - 0.7)).toBeLessThan(0.1);
    expect(Math.abs(w[1]! + 0.5)).toBeLessThan(0.1);
    expect(head.meta.training!.cv!.metrics.c_index!).toBeGreaterThan(0.6);
    expect(head.meta.training!.n_events).toBe(event.reduce((a, b) => a + b, 0));
    // Breslow H0 of an exponential baseline is ≈ 0.1·t·exp(β·x̄) (risk is centred at the mean).
    const times = head.weight('cox.baseline_times').data;
    const h0 = head.weight('cox.baseline_cumhaz').data;
    const mid = Math.floor(times.length / 2);
    let shift = head.weight('cox.bias').data[0]!;
    shift = -shift;
    expect(h0[mid]! / (0.1 * times[mid]! * Math.exp(shift))).toBeGreaterThan(0.85);
    expect(h0[mid]! / (0.1 * times[mid]! * Math.exp(shift))).toBeLessThan(1.15);
    // Survival curves: within [0, 1], non-increasing, lower for a higher risk.
    const out = await head.run({
      slices: 2,
      hidden: 2,
      blocks: [{ data: Float32Array.of(1, -1, -1, 1), tokensPerSlice: 1 }],
    });
    const { curves } = out.survival!;
    const nt = times.length;
    expect(out.risk![0]!).toBeGreaterThan(out.risk![1]!);
    for (let t = 1; t < nt; t++) {
      expect(curves[t]!).toBeLessThanOrEqual(curves[t - 1]!);
      expect(curves[t]!).toBeLessThan(curves[nt + t]! + 1e-7);
    }
    expect(curves[0]!).toBeLessThanOrEqual(1);
    expect(curves[nt - 1]!).toBeGreaterThanOrEqual(0);
  });

  it('Efron and Breslow agree without ties and differ with ties', async () => {
    const efron = await fitHead('cox', x, { time, event }, { folds: 0, ties: 'efron' });
    const breslow = await fitHead('cox', x, { time, event }, { folds: 0, ties: 'breslow' });
    const we = efron.weight('cox.weight').data;
    const wb = breslow.weight('cox.weight').data;
    expect(Math.abs(we[0]! - wb[0]!)).toBeLessThan(1e-6);
    expect(Math.abs(we[1]! - wb[1]!)).toBeLessThan(1e-6);
    const tied = Float64Array.from(time, (t) => Math.ceil(t / 5) * 5);
    const te = (await fitHead('cox', x, { time: tied, event }, { folds: 0, ties: 'efron' })).weight(
      'cox.weight',
    ).data;
    const tb = (await fitHead('cox', x, { time: tied, event }, { folds: 0, ties: 'breslow' })).weight(
      'cox.weight',
    ).data;
    const errE = Math.abs(te[0]! - 0.7) + Math.abs(te[1]! + 0.5);
    const errB = Math.abs(tb[0]! - 0.7) + Math.abs(tb[1]! + 0.5);
    console.log(
      `tied times: efron [${te[0]!.toFixed(3)}, ${te[1]!.toFixed(3)}], breslow [${tb[0]!.toFixed(3)}, ${tb[1]!.toFixed(3)}]`,
    );
    expect(Math.abs(te[0]! - tb[0]!)).toBeGreaterThan(1e-3);
    // Breslow's approximation attenuates coefficients under heavy ties; Efron's much less.
    expect(errE).toBeLessThan(errB);
    expect(Math.abs(tb[0]!)).toBeLessThan(Math.abs(te[0]!));
  });
});

describe('ridge and MLP', () => {
  it('ridge recovers linear coefficients and intercept', async () => {
    const rng = new Rng(9);
    const coef = [1.5, -2, 0.25, 0];
    const n = 300;
    const data = Float32Array.from({ length: n * 4 }, () => rng.normal() * 2 + 1);
    const y = Array.from(
      { length: n },
      (_, i) => 3 + coef.reduce((s, c, j) => s + c * data[i * 4 + j]!, 0) + rng.normal() * 0.1,
    );
    const head = await fitHead('ridge', { data, rows: n, cols: 4 }, y, { l2: 1e-3 });
    expect(head.meta.task).toBe('regression');
    const w = head.weight('classifier.weight').data;
    coef.forEach((c, j) => expect(Math.abs(w[j]! - c)).toBeLessThan(0.02));
    expect(Math.abs(head.weight('classifier.bias').data[0]! - 3)).toBeLessThan(0.05);
    expect(head.meta.training!.cv!.metrics.r2!).toBeGreaterThan(0.99);
    expect(head.meta.training!.cv!.metrics.rmse!).toBeLessThan(0.15);
  });

  it('MLP learns a non-linear classification (XOR) deterministically', async () => {
    const rng = new Rng(4);
    const rows: number[][] = [];
    const y: number[] = [];
    for (let i = 0; i < 240; i++) {
      const a = rng.uniform(-1, 1);
      const b = rng.uniform(-1, 1);
      rows.push([a, b]);
      y.push(a * b > 0 ? 1 : 0);
    }
    const x = rowsOf(rows);
    const opts = { hidden: [16], learningRate: 1e-2, maxEpochs: 150, folds: 3, seed: 2 } as const;
    const a = await fitHead('mlp', x, y, opts);
    const b = await fitHead('mlp', x, y, opts);
    console.log(`mlp xor: CV accuracy ${a.meta.training!.cv!.metrics.accuracy!.toFixed(3)}`);
    expect(a.meta.training!.cv!.metrics.accuracy!).toBeGreaterThan(0.85);
    expect([...a.weight('mlp.0.weight').data]).toEqual([...b.weight('mlp.0.weight').data]);
    // Logistic regression cannot separate XOR: the MLP must beat it clearly.
    const lin = await fitHead('logistic', x, y, { folds: 3, seed: 2 });
    expect(lin.meta.training!.cv!.metrics.accuracy!).toBeLessThan(0.7);
  });

  it('MLP regression fits a smooth non-linear target', async () => {
    const rng = new Rng(8);
    const n = 300;
    const data = Float32Array.from({ length: n * 2 }, () => rng.uniform(-2, 2));
    const y = Array.from({ length: n }, (_, i) => Math.sin(data[i * 2]!) * 3 + data[i * 2 + 1]! * 2 + 10);
    const head = await fitHead('mlp', { data, rows: n, cols: 2 }, y, {
      task: 'regression',
      hidden: [32],
      learningRate: 1e-2,
      maxEpochs: 150,
      folds: 3,
    });
    console.log(`mlp regression: CV R2 ${head.meta.training!.cv!.metrics.r2!.toFixed(3)}`);
    expect(head.meta.training!.cv!.metrics.r2!).toBeGreaterThan(0.9);
    const out = await head.run({
      slices: 1,
      hidden: 2,
      blocks: [{ data: Float32Array.of(1, 0.5), tokensPerSlice: 1 }],
    });
    expect(Math.abs(out.value![0]! - (Math.sin(1) * 3 + 1 + 10))).toBeLessThan(0.5);
  });
});

describe('fit validation', () => {
  const x = rowsOf([
    [0, 1],
    [1, 0],
    [2, 1],
    [3, 0],
    [4, 1],
    [5, 0],
  ]);
  it('rejects bad inputs with INVALID_ARGUMENT naming the problem', async () => {
    await expectInvalid(fitHead('logistic', x, [0, 0, 0, 0, 0, 1], { folds: 0 }), /class 1 has 1 sample/);
    await expectInvalid(
      fitHead('logistic', x, [0, 0, 0, 1, 1, 1], { folds: 5 }),
      /class 0 has 3 sample.*5-fold/,
    );
    await expectInvalid(fitHead('logistic', x, [1, 1, 1, 1, 1, 1], { folds: 0 }), /single class/);
    await expectInvalid(
      fitHead('logistic', x, [0, 0, 0, 1, 1, 2], { folds: 0, numClasses: 2 }),
      /label 2 is out of range/,
    );
    await expectInvalid(
      fitHead('logistic', x, [0, 0, 0, 1, 1, 1.5], { folds: 0 }),
      /row 5 must be a non-negative integer/,
    );
    await expectInvalid(fitHead('logistic', x, [0, 0, 1, 1], { folds: 0 }), /4 entries for 6 feature rows/);
    const nan = Float32Array.from(x.data);
    nan[7] = NaN;
    await expectInvalid(
      fitHead('logistic', { ...x, data: nan }, [0, 0, 0, 1, 1, 1], { folds: 0 }),
      /row 3 .*NaN or infinite/,
    );
    await expectInvalid(
      fitHead('logistic', { ...x, cols: 3 }, [0, 0, 0, 1, 1, 1], { folds: 0 }),
      /12 values but rows × cols/,
    );
    await expectInvalid(
      fitHead('cox', x, { time: [1, 2, 3, 4, 5, 6], event: [0, 0, 0, 0, 0, 0] }, { folds: 0 }),
      /no events/,
    );
    await expectInvalid(fitHead('ridge', x, [1, 2, Infinity, 4, 5, 6], { folds: 0 }), /target of row 2/);
  });

  it('stops with CANCELLED when the signal fires', async () => {
    const { x: bx, y } = blobs(300, 8, 3, 3);
    const ac = new AbortController();
    ac.abort();
    const e = await fitHead('mlp', bx, y, { signal: ac.signal }).catch((err: unknown) => err);
    expect((e as CuriaError).code).toBe('CANCELLED');
  });
});
