import { CuriaError } from '@curia/errors';
import { describe, expect, it } from 'vitest';

import { createLogger } from './logger.js';

describe('createLogger', () => {
  it("logs a CuriaError by code and message, never its cause (a file error naming a patient's path)", () => {
    const lines: string[] = [];
    const log = createLogger('test', 'trace', '', { write: (l: string) => void lines.push(l) });
    const path = '/data/DOE^JOHN_19700101/ct.nii.gz';
    const cause = Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { path });
    const err = new CuriaError('NOT_FOUND', 'start.ref.uri: the ref is not a readable file', { cause });
    log.error({ err }, 'failed');
    log.info({ err }, 'failed');
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line).toContain('the ref is not a readable file');
      expect(line).toContain('NOT_FOUND');
      expect(line).not.toContain('DOE^JOHN');
    }
    expect(err.cause).toBe(cause); // kept for local debugging
  });
});
