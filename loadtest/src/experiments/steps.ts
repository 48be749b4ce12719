import type { LoadResult } from '../generator.js';

/** One offered-load step of a capacity sweep. */
export interface Step {
  readonly offered: number;
  readonly result: LoadResult;
}

/** The knee of a latency-vs-load curve and the capacity it implies. */
export interface Knee {
  /** Highest offered rate still served (≥ 95% achieved, p90 ≤ 3× the lightest step's p90, no errors). */
  readonly kneeOffered: number;
  /** Achieved units/s at the knee. */
  readonly kneeAchieved: number;
  /** Highest achieved units/s (while load was offered) over all steps. */
  readonly maxAchieved: number;
  /** p90 (ms) at the lightest step, the reference (p90, not p99: light steps have few calls). */
  readonly baselineP90: number;
}

/** Finds the knee of a sweep (steps in increasing offered order). */
export function findKnee(steps: readonly Step[]): Knee {
  const first = steps[0];
  if (!first) throw new Error('no steps');
  const baselineP90 = first.result.latency.p90;
  let knee: Step | null = null;
  for (const s of steps) {
    const served = s.result.steadyUnitsPerSec >= 0.95 * s.offered;
    const errors = Object.entries(s.result.byCode).some(([c, n]) => c !== 'OK' && n > 0);
    const fast = s.result.latency.p90 <= 3 * baselineP90;
    if (served && fast && !errors) knee = s;
    else break;
  }
  return {
    kneeOffered: knee?.offered ?? Number.NaN,
    kneeAchieved: knee?.result.steadyUnitsPerSec ?? Number.NaN,
    maxAchieved: Math.max(...steps.map((s) => s.result.steadyUnitsPerSec)),
    baselineP90,
  };
}
