import type { LoadResult } from '../generator.js';

/** One offered-load step of a capacity sweep. */
export interface Step {
  readonly offered: number;
  readonly result: LoadResult;
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
