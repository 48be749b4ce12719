import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import { runLoad, type CallFn } from '../generator.js';
import { commonServedRate, cpuMsPerCall, findKnee, ratioTo, stepServed, type Step } from './steps.js';

/** A fake service: each call takes `ms`, and fails with `code` after `okCalls` calls. */
function service(ms: number, okCalls = Infinity, code = 'RESOURCE_EXHAUSTED'): CallFn {
  let n = 0;
  return async () => {
    await sleep(ms);
    return { code: n++ < okCalls ? 'OK' : code };
  };
}

async function step(offered: number, call: CallFn, durationMs = 1_000): Promise<Step> {
  const result = await runLoad(call, {
    mode: { kind: 'open', ratePerSec: offered },
    durationMs,
    maxRequests: 1_000,
    deadlineMs: 5_000,
  });
  return { offered, result };
}

describe('capacity knee', () => {
  it('counts a light step whose few calls all complete as served, though a rate window clips them', async () => {
    // 4 arrivals at 0, 250, 500, 750 ms, each taking 300 ms: the window up to the last arrival
    // holds only two completions (2.7/s of 4/s offered), yet nothing was left unserved.
    const light = await step(4, service(300));
    expect(light.result.steadyUnitsPerSec).toBeLessThan(0.95 * 4);
    expect(stepServed(light, light.result.latency.p90)).toBe(true);
  });

  it('stops at the first step with errors or a growing queue', async () => {
    const steps = [
      await step(4, service(100)),
      await step(8, service(100)),
      await step(16, service(100, 5)), // shed after 5 calls
      await step(32, service(100)),
    ];
    const knee = findKnee(steps);
    expect(knee.kneeOffered).toBe(8);
    // A step whose latency grew past 3× the lightest step's p90 is not served either.
    const slow = await step(8, service(400));
    expect(stepServed(slow, steps[0]!.result.latency.p90)).toBe(false);
  });
});

describe('security ratios', () => {
  it('divides by the mean of the plain runs and brackets it with each plain run', () => {
    expect(ratioTo([20, 16], 18)).toEqual({ ratio: 1, low: 18 / 20, high: 18 / 16 });
    expect(ratioTo([10], 8).ratio).toBeCloseTo(0.8);
    // A plain run without a knee is left out; no usable plain run or no secure figure → NaN.
    expect(ratioTo([Number.NaN, 10], 5).ratio).toBeCloseTo(0.5);
    expect(ratioTo([Number.NaN], 5).ratio).toBeNaN();
    expect(ratioTo([10], Number.NaN).ratio).toBeNaN();
  });

  it('finds the highest rate every sweep served, and CPU per OK call there', async () => {
    const fast = [await step(4, service(50)), await step(8, service(50)), await step(16, service(50, 3))];
    const slower = [await step(4, service(50)), await step(8, service(50, 2))];
    expect(commonServedRate([fast, slower])).toBe(4);
    expect(commonServedRate([fast, [await step(2, service(50))]])).toBeNaN();
    const s = { ...fast[0]!, cpu: { services: 0.4, generator: 0.1 } };
    const ok = s.result.byCode.OK ?? 0;
    expect(cpuMsPerCall(s)).toEqual({ services: 400 / ok, generator: 100 / ok });
    expect(cpuMsPerCall(fast[0])).toBeUndefined();
  });
});
