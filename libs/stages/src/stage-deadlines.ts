/** Kept between the last stage's deadline and the caller's, to send the answer, ms (at most). */
export const ANSWER_MARGIN_MS = 50;
/** Kept for the heads after the preprocess → embed pipeline, as a share of the time left. */
export const HEADS_SHARE = 0.1;
/** Upper bound of that reserve, ms. */
export const HEADS_RESERVE_MAX_MS = 2_000;

/** The deadlines the gateway gives its stages. */
export interface StageDeadlines {
  /** Preprocess and Embed (they stream into each other). */
  readonly pipeline: Date;
  /** Heads' Predict calls. */
  readonly heads: Date;
}

/**
 * Splits the study's deadline among the stages, so a stage that runs out fails on its own
 * deadline — and the caller gets a DEADLINE_EXCEEDED that names it — before the caller's own
 * deadline fires: the pipeline stops early enough to leave the heads their share (10% of the
 * time left, at most 2 s, when the study has heads), and every stage leaves a margin to answer.
 */
export function stageDeadlines(deadline: Date, now: number, withHeads: boolean): StageDeadlines {
  const end = deadline.getTime();
  const left = Math.max(0, end - now);
  const heads = end - Math.min(ANSWER_MARGIN_MS, left * 0.05);
  const reserve = withHeads ? Math.min(HEADS_RESERVE_MAX_MS, left * HEADS_SHARE) : 0;
  return { pipeline: new Date(heads - reserve), heads: new Date(heads) };
}
