import type { LoadResult } from '../generator.js';

/** One offered-load step of a capacity sweep. */
export interface Step {
  readonly offered: number;
  readonly result: LoadResult;
  /** CPU seconds spent over the step (warm-up and drain included), when measured. */
  readonly cpu?: { readonly services: number; readonly generator: number };
}

/** The knee of a latency-vs-load curve and the capacity it implies. */
export interface Knee {
  /** Highest offered rate still served (see {@link stepServed}); steps after the first unserved one do not count. */
  readonly kneeOffered: number;
  /** Achieved units/s at the knee. */
  readonly kneeAchieved: number;
  /** Highest achieved units/s (while load was offered) over all steps. */
  readonly maxAchieved: number;
  /** p90 (ms) at the lightest step, the reference (p90, not p99: light steps have few calls). */
  readonly baselineP90: number;
}

/**
 * Whether an open-loop step was served: every arrival was launched and every call ended OK (a
 * call that never settles ends as CLIENT_TIMEOUT, so this also means none hung), with p90 within
 * 3× the lightest step's (a queue that grows over a step shows as latency). Counted per call
 * rather than as a rate over a window: at light load a 15 s step holds only a few calls and any
 * rate window clips one of them.
 */
export function stepServed(step: Step, baselineP90: number): boolean {
  const r = step.result;
  return (
    r.skipped === 0 && r.started > 0 && (r.byCode.OK ?? 0) === r.started && r.latency.p90 <= 3 * baselineP90
  );
}

/** Finds the knee of a sweep (steps in increasing offered order). */
export function findKnee(steps: readonly Step[]): Knee {
  const first = steps[0];
  if (!first) throw new Error('no steps');
  const baselineP90 = first.result.latency.p90;
  let knee: Step | null = null;
  for (const s of steps) {
    if (stepServed(s, baselineP90)) knee = s;
    else break;
  }
  return {
    kneeOffered: knee?.offered ?? Number.NaN,
    kneeAchieved: knee?.result.steadyUnitsPerSec ?? Number.NaN,
    maxAchieved: Math.max(...steps.map((s) => s.result.steadyUnitsPerSec)),
    baselineP90,
  };
}

/** A secure figure against the plain runs' figures (plain runs alternated with it, to expose noise). */
export interface Ratio {
  /** secure ÷ mean of the plain figures. */
  readonly ratio: number;
  /** secure ÷ the highest and ÷ the lowest plain figure: the spread the machine's noise allows. */
  readonly low: number;
  readonly high: number;
}

/** `secure` relative to the plain runs (NaN when either side is missing or not finite). */
export function ratioTo(plain: readonly number[], secure: number): Ratio {
  const ok = plain.filter((p) => Number.isFinite(p) && p > 0);
  if (!ok.length || !Number.isFinite(secure)) return { ratio: Number.NaN, low: Number.NaN, high: Number.NaN };
  const mean = ok.reduce((a, b) => a + b, 0) / ok.length;
  return { ratio: secure / mean, low: secure / Math.max(...ok), high: secure / Math.min(...ok) };
}

/**
 * The highest offered rate that every sweep served (a step present and served in each), where CPU
 * per call compares like with like; NaN when none.
 */
export function commonServedRate(sweeps: readonly (readonly Step[])[]): number {
  const served = sweeps.map((steps) => {
    const base = steps[0]?.result.latency.p90 ?? Number.NaN;
    return new Set(steps.filter((s) => stepServed(s, base)).map((s) => s.offered));
  });
  const [first, ...rest] = served;
  const common = [...(first ?? [])].filter((r) => rest.every((set) => set.has(r)));
  return common.length ? Math.max(...common) : Number.NaN;
}

/** CPU milliseconds per OK call of a step (services, generator); undefined when not measured. */
export function cpuMsPerCall(step: Step | undefined): { services: number; generator: number } | undefined {
  const ok = step?.result.byCode.OK ?? 0;
  if (!step?.cpu || ok === 0) return undefined;
  return { services: (1000 * step.cpu.services) / ok, generator: (1000 * step.cpu.generator) / ok };
}
