import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { SERVICE_MALLOC_ENV, serviceNodeFlags, serviceProcessEnv } from './process-tuning.js';

describe('service process tuning', () => {
  it('adds the malloc settings without overriding the caller', () => {
    expect(serviceProcessEnv({ A: '1' })).toMatchObject({ A: '1', ...SERVICE_MALLOC_ENV });
    expect(serviceProcessEnv({ MALLOC_TRIM_THRESHOLD_: '0' }).MALLOC_TRIM_THRESHOLD_).toBe('0');
    expect(serviceNodeFlags({})).toEqual(['--initial-old-space-size=256']);
    expect(serviceNodeFlags({ CURIA_NODE_INITIAL_OLD_SPACE_MB: '0' })).toEqual([]);
  });

  it('matches the container entrypoint', () => {
    const sh = readFileSync(new URL('../../../deploy/entrypoint.sh', import.meta.url), 'utf8');
    for (const [k, v] of Object.entries(SERVICE_MALLOC_ENV)) expect(sh).toContain(`${k}="\${${k}:-${v}}"`);
    expect(sh).toContain('CURIA_NODE_INITIAL_OLD_SPACE_MB:-256');
  });
});
