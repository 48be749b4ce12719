import { describe, expect, it } from 'vitest';

import { ConfigError, env, loadConfig, serviceEnvSchema, serviceSchema, z } from './config.js';

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

describe('env schemas', () => {
  const accepts = (schema: z.ZodType, input: string) => schema.safeParse(input).success;

  it('positiveInt and nonNegativeInt take whole numbers from strings', () => {
    expect(env.positiveInt.parse('8')).toBe(8);
    expect(['0', '-1', '1.5', 'x'].filter((v) => accepts(env.positiveInt, v))).toEqual([]);
    expect(env.nonNegativeInt.parse('0')).toBe(0);
    expect(['-1', '0.5'].filter((v) => accepts(env.nonNegativeInt, v))).toEqual([]);
    expect(accepts(env.port, '65535') && !accepts(env.port, '65536')).toBe(true);
  });

  it('bool takes true/1/yes and false/0/no only', () => {
    expect(['true', '1', 'yes'].map((v) => env.bool.parse(v))).toEqual([true, true, true]);
    expect(['false', '0', 'no'].map((v) => env.bool.parse(v))).toEqual([false, false, false]);
    expect(['TRUE', 'on', ''].filter((v) => accepts(env.bool, v))).toEqual([]);
  });

  it('commaList trims entries and drops empty ones; a default applies when unset', () => {
    expect(env.commaList.parse(' a, ,b ,,c')).toEqual(['a', 'b', 'c']);
    expect(env.commaList.parse(' , ')).toEqual([]);
    const schema = z.object({ LIST: env.commaList.default([]) });
    expect(loadConfig(schema, { LIST: '' }).LIST).toEqual([]);
    expect(loadConfig(schema, { LIST: '/x, /y' }).LIST).toEqual(['/x', '/y']);
  });
});
