import { describe, expect, it } from 'vitest';

import { stageDeadlines } from './stage-deadlines.js';

describe('stageDeadlines', () => {
  const now = 1_000_000;
  const at = (ms: number): Date => new Date(now + ms);

  it('keeps the heads a tenth of the time left (at most 2 s) and a margin to answer', () => {
    expect(stageDeadlines(at(10_000), now, true)).toEqual({ pipeline: at(8_950), heads: at(9_950) });
    expect(stageDeadlines(at(60_000), now, true)).toEqual({ pipeline: at(57_950), heads: at(59_950) });
  });

  it('gives the pipeline everything but the margin when no head runs', () => {
    expect(stageDeadlines(at(10_000), now, false)).toEqual({ pipeline: at(9_950), heads: at(9_950) });
  });

  it('scales the margin down for short deadlines and never ends after the caller', () => {
    const d = stageDeadlines(at(200), now, true);
    expect(d.heads).toEqual(at(190));
    expect(d.pipeline).toEqual(at(170));
    const past = stageDeadlines(at(-5), now, true);
    expect(past.heads.getTime()).toBeLessThanOrEqual(now - 5);
    expect(past.pipeline.getTime()).toBeLessThanOrEqual(past.heads.getTime());
  });
});
