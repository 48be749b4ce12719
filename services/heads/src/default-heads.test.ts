import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { common, heads } from '@curia/client';
import { ConfigError, loadConfig } from '@curia/kit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { f32Tensor } from './codec.js';
import { headsEnvSchema } from './config.js';
import { startHeadsServer, type RunningHeads } from './testing/start-server.js';

/** A Fit of a logistic head `name` on 16 separable 4-d samples, promoted (served unversioned at once). */
// eslint-disable-next-line @typescript-eslint/require-await -- Fit takes an AsyncIterable
async function* fitRequests(name: string): AsyncGenerator<heads.FitRequest> {
  const start = heads.FitStart.fromPartial({
    head: name,
    promote: true,
    kind: common.HeadKind.LOGISTIC,
    task: common.HeadTask.CLASSIFICATION,
    feature: { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
    labelNames: ['a', 'b'],
    options: { folds: 2 },
  });
  yield { msg: { $case: 'start', value: start } };
  const samples = Array.from({ length: 16 }, (_, i) => ({
    features: f32Tensor(
      [0, 1, 2, 3].map((d) => (i % 2 ? 1 : -1) + d * 0.01 + i * 0.001),
      [4],
    ),
    label: { $case: 'classIndex' as const, value: i % 2 },
  }));
  yield { msg: { $case: 'samples', value: { samples } } };
}

const marked = (list: readonly common.HeadInfo[]): string[] =>
  list.map((h) => `${h.name}@${h.version}${h.isDefault ? ' default' : ''}`);

describe('CURIA_HEADS_DEFAULT: the heads a deployment runs by default', () => {
  let dir = '';
  let svc: RunningHeads;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'curia-default-heads-'));
    // `later` names a head no Fit has created yet: accepted at boot, marked once it exists.
    svc = await startHeadsServer({
      CURIA_HEADS_DIR: dir,
      CURIA_HEADS_DEFAULT: 'alpha, beta@1,later',
    });
  });
  afterAll(async () => {
    await svc?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('GetInfo, ListHeads, GetHead and Fit mark a name-only default on its promoted version, a pinned one on that version', async () => {
    // Fit answers with the head it created, marked as it is at that moment: alpha@1 is the promoted
    // alpha until alpha@2 is fitted with `promote`, beta@1 is pinned.
    const fitted: string[] = [];
    for (const name of ['alpha', 'alpha', 'beta', 'beta', 'gamma'])
      fitted.push(...marked([(await svc.client.fit(fitRequests(name))).head!]));
    expect(fitted).toEqual(['alpha@1 default', 'alpha@2 default', 'beta@1 default', 'beta@2', 'gamma@1']);
    const { info } = await svc.client.getInfo({});
    expect(marked(info!.heads)).toEqual(['alpha@2 default', 'beta@2', 'gamma@1']);
    const all = await svc.client.listHeads({ allVersions: true, model: '' });
    expect(marked(all.heads)).toEqual(['alpha@1', 'alpha@2 default', 'beta@1 default', 'beta@2', 'gamma@1']);
    expect((await svc.client.getHead({ name: 'beta', version: '1' })).head?.isDefault).toBe(true);
    expect((await svc.client.getHead({ name: 'alpha', version: '1' })).head?.isDefault).toBe(false);

    await svc.client.fit(fitRequests('later'));
    expect(marked((await svc.client.getInfo({})).info!.heads)).toContain('later@1 default');
  });

  it('refuses a malformed list at boot, naming the bad entries', () => {
    expect(() =>
      loadConfig(headsEnvSchema, { CURIA_HEADS_DIR: dir, CURIA_HEADS_DEFAULT: 'ok,Bad Name,x@' }),
    ).toThrow(ConfigError);
    expect(() =>
      loadConfig(headsEnvSchema, { CURIA_HEADS_DIR: dir, CURIA_HEADS_DEFAULT: 'ok,Bad Name,x@' }),
    ).toThrow(/CURIA_HEADS_DEFAULT: .*\(bad: Bad Name, x@\)/);
    expect(loadConfig(headsEnvSchema, { CURIA_HEADS_DIR: dir }).CURIA_HEADS_DEFAULT).toEqual([]);
  });
});
