import { describe, expect, it } from 'vitest';

import { CuriaError } from '@curia/errors';

import { errorCodeOf, errorReason, ServerError, Status, statusOf } from './errors.js';

const statuses = Object.values(Status).filter((s): s is Status => typeof s === 'number');

describe('statusOf / errorCodeOf', () => {
  it('are inverse: every error code round-trips, and so does every status that has a code', () => {
    const codes = statuses.flatMap((s) => errorCodeOf(s) ?? []);
    expect(codes).toHaveLength(13);
    for (const code of codes) expect(errorCodeOf(statusOf(code))).toBe(code);
    for (const s of statuses) {
      const code = errorCodeOf(s);
      if (code !== undefined) expect(statusOf(code)).toBe(s);
    }
  });

  it('maps each code to the status of the same name, and nothing to the statuses no CuriaError carries', () => {
    for (const s of statuses) expect(errorCodeOf(s) ?? Status[s]).toBe(Status[s]);
    const without = statuses.filter((s) => errorCodeOf(s) === undefined).map((s) => Status[s]);
    expect(without.sort()).toEqual(['ABORTED', 'DATA_LOSS', 'OK', 'UNKNOWN']);
  });
});

describe('errorReason', () => {
  it('names the status a failure ends with', () => {
    const abort = new Error('aborted');
    abort.name = 'AbortError';
    const reasons = [
      new CuriaError('NOT_FOUND', 'x'),
      new ServerError(Status.PERMISSION_DENIED, 'x'),
      abort,
      new Error('x'),
      'x',
    ].map(errorReason);
    expect(reasons).toEqual(['NOT_FOUND', 'PERMISSION_DENIED', 'CANCELLED', 'INTERNAL', 'INTERNAL']);
  });
});
