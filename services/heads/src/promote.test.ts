import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ClientError, heads, Status } from '@curia/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { f32Tensor } from './codec.js';
import { HeadStore } from './store.js';
import { fitStream } from './testing/fit-stream.js';
import { startHeadsServer, type RunningHeads } from './testing/start-server.js';

const D = 4;

/** A Fit of a logistic head `name` on 16 separable 4-d samples (`flip` swaps the classes, so versions differ). */
function fitRequests(name: string, promote: boolean, flip = false): AsyncIterable<heads.FitRequest> {
  const samples = Array.from({ length: 16 }, (_, i) => ({
    features: f32Tensor(
      Array.from({ length: D }, (_, d) => (i % 2 ? 1 : -1) + d * 0.01 + i * 0.001),
      [D],
    ),
    label: { $case: 'classIndex' as const, value: flip ? 1 - (i % 2) : i % 2 },
  }));
  return fitStream(
    { head: name, labelNames: ['a', 'b'], options: heads.FitOptions.fromPartial({ folds: 2 }), promote },
    samples,
  );
}

async function codeOf(call: Promise<unknown>): Promise<{ code?: Status; details: string }> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  return err instanceof ClientError ? { code: err.code, details: err.details } : { details: '' };
}

describe('HeadsService: versions are promoted, not overwritten by a Fit (issue #17)', () => {
  let dir = '';
  let svc: RunningHeads;

  /** The version and predicted class an unversioned Predict of `name` answers with. */
  const served = async (name: string): Promise<string> => {
    const res = await svc.client.predict({
      head: name,
      slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: f32Tensor([1, 1, 1, 1], [D]) }] }],
    });
    return `${res.head!.version}:${res.prediction!.predictedIndex}`;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'curia-heads-promote-'));
    svc = await startHeadsServer({ CURIA_HEADS_DIR: dir });
  });
  afterAll(async () => {
    await svc?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('two Fits without promote: the unversioned name answers with version 1 both times; PromoteHead 2 moves it', async () => {
    const first = await svc.client.fit(fitRequests('organ', false));
    expect([first.head?.version, first.head?.promoted]).toEqual(['1', true]); // a new name's first version
    expect(await served('organ')).toBe('1:1');
    const second = await svc.client.fit(fitRequests('organ', false, true));
    expect([second.head?.version, second.head?.promoted]).toEqual(['2', false]);
    expect(await served('organ')).toBe('1:1');
    expect(await served('organ@2')).toBe('2:0');

    const list = await svc.client.listHeads({ allVersions: true, model: '' });
    expect(list.heads.map((h) => `${h.name}@${h.version}${h.promoted ? ' promoted' : ''}`)).toEqual([
      'organ@1 promoted',
      'organ@2',
    ]);
    expect((await svc.client.listHeads({})).heads.map((h) => `${h.name}@${h.version}`)).toEqual(['organ@1']);
    expect((await svc.client.getHead({ name: 'organ', version: '2' })).promotedVersion).toBe('1');
    expect((await svc.client.getInfo({})).info!.heads.map((h) => `${h.name}@${h.version}`)).toEqual([
      'organ@1',
    ]);

    const p = await svc.client.promoteHead({ name: 'organ', version: '2' });
    expect([p.head?.name, p.head?.version, p.head?.promoted, p.previousVersion]).toEqual([
      'organ',
      '2',
      true,
      '1',
    ]);
    expect(await served('organ')).toBe('2:0');
    expect((await svc.client.getHead({ name: 'organ' })).head?.version).toBe('2');
    // Idempotent: promoting the promoted version again changes nothing.
    expect((await svc.client.promoteHead({ name: 'organ', version: '2' })).previousVersion).toBe('2');

    // The alias is durable: a store reopened over the directory resolves the same way.
    const reopened = await HeadStore.open(dir);
    expect(reopened.get('organ').head.meta.version).toBe('2');
    await reopened.close();
  });

  it('a Fit with promote resolves at once', async () => {
    const third = await svc.client.fit(fitRequests('organ', true));
    expect([third.head?.version, third.head?.promoted]).toEqual(['3', true]);
    expect(await served('organ')).toBe('3:1');
  });

  it('PromoteHead refuses unknown versions (NOT_FOUND listing them) and bad arguments (INVALID_ARGUMENT)', async () => {
    const missing = await codeOf(svc.client.promoteHead({ name: 'organ', version: '9' }));
    expect(missing.code).toBe(Status.NOT_FOUND);
    expect(missing.details).toMatch(/versions: 1, 2, 3/);
    expect((await codeOf(svc.client.promoteHead({ name: 'nope', version: '1' }))).code).toBe(
      Status.NOT_FOUND,
    );
    for (const req of [
      { name: 'organ', version: '' },
      { name: 'organ', version: '../1' },
      { name: '', version: '1' },
      { name: 'Bad Name', version: '1' },
    ]) {
      expect((await codeOf(svc.client.promoteHead(req))).code, JSON.stringify(req)).toBe(
        Status.INVALID_ARGUMENT,
      );
    }
    expect(await served('organ')).toBe('3:1');
  });
});
