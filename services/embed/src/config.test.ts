import { ConfigError, loadConfig } from '@curia/kit';
import { describe, expect, it } from 'vitest';

import { embedEnvSchema } from './config.js';

describe('embed configuration', () => {
  it('reads execution providers as a de-duplicated, case-insensitive comma list (default cpu)', () => {
    expect(loadConfig(embedEnvSchema, {}).CURIA_EMBED_EXECUTION_PROVIDERS).toEqual(['cpu']);
    const env = loadConfig(embedEnvSchema, { CURIA_EMBED_EXECUTION_PROVIDERS: 'CUDA, cpu,,cuda' });
    expect(env.CURIA_EMBED_EXECUTION_PROVIDERS).toEqual(['cuda', 'cpu']);
    for (const bad of [' , ', 'cpu,tpu'])
      expect(() => loadConfig(embedEnvSchema, { CURIA_EMBED_EXECUTION_PROVIDERS: bad })).toThrow(ConfigError);
  });

  it('reads model directories as a comma list and the engine thread flag as a boolean', () => {
    const env = loadConfig(embedEnvSchema, {
      CURIA_EMBED_MODELS: ' /a ,/b,',
      CURIA_EMBED_ENGINE_THREAD: '0',
    });
    expect(env.CURIA_EMBED_MODELS).toEqual(['/a', '/b']);
    expect(env.CURIA_EMBED_ENGINE_THREAD).toBe(false);
    const defaults = loadConfig(embedEnvSchema, {});
    expect(defaults.CURIA_EMBED_MODELS).toEqual([]);
    expect(defaults.CURIA_EMBED_ENGINE_THREAD).toBe(true);
  });
});
