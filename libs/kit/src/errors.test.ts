import { describe, expect, it } from 'vitest';

import { errorCodeOf, Status, statusOf } from './errors.js';

const statuses = Object.values(Status).filter((s): s is Status => typeof s === 'number');

describe('statusOf / errorCodeOf', () => {
  it('are inverse: every error code round-trips, and so does every status that has a code', () => {
    const codes = statuses.flatMap((s) => errorCodeOf(s) ?? []);
    expect(codes).toHaveLength(12);
    for (const code of codes) expect(errorCodeOf(statusOf(code))).toBe(code);
    for (const s of statuses) {
      const code = errorCodeOf(s);
      if (code !== undefined) expect(statusOf(code)).toBe(s);
    }
  });

  it('maps each code to the status of the same name, and nothing to the statuses no CuriaError carries', () => {
    for (const s of statuses) expect(errorCodeOf(s) ?? Status[s]).toBe(Status[s]);
    const without = statuses.filter((s) => errorCodeOf(s) === undefined).map((s) => Status[s]);
    expect(without.sort()).toEqual(['ABORTED', 'DATA_LOSS', 'OK', 'UNAUTHENTICATED', 'UNKNOWN']);
  });
});
