import { describe, expect, it } from 'vitest';

import { ConfigError, loadConfig, serviceEnvSchema, serviceSchema, z } from './config.js';

describe('loadConfig', () => {
  it('applies defaults and coerces values', () => {
    const env = loadConfig(serviceEnvSchema, { CURIA_GRPC_PORT: '7001', CURIA_PROCESS_METRICS: 'false' });
    expect(env.CURIA_GRPC_PORT).toBe(7001);
    expect(env.CURIA_PROCESS_METRICS).toBe(false);
    expect(env.CURIA_MAX_RECEIVE_MESSAGE_BYTES).toBe(64 * 1024 * 1024);
  });

  it('names every invalid variable and the value it got', () => {
    const schema = serviceSchema({ CURIA_EMBED_MAX_BATCH: z.coerce.number().int().positive().default(8) });
    let err: unknown;
    try {
      loadConfig(schema, { CURIA_GRPC_PORT: '70000', CURIA_LOG_LEVEL: 'loud', CURIA_EMBED_MAX_BATCH: '-1' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/CURIA_GRPC_PORT: .*\(got "70000"\)/);
    expect(msg).toMatch(/CURIA_LOG_LEVEL: .*\(got "loud"\)/);
    expect(msg).toMatch(/CURIA_EMBED_MAX_BATCH: .*\(got "-1"\)/);
  });

  it('treats empty strings as unset', () => {
    expect(loadConfig(serviceEnvSchema, { CURIA_GRPC_HOST: '' }).CURIA_GRPC_HOST).toBe('0.0.0.0');
  });
});
