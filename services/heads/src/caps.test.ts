import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ClientError, Status, common, type heads } from '@curia/client';
import { fitHead } from '@curia/heads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { f32Tensor, MAX_DESCRIPTION_BYTES } from './codec.js';
import { FIT_CAPS } from './fit-request.js';
import { fitStream } from './testing/fit-stream.js';
import { startHeadsServer, type RunningHeads } from './testing/start-server.js';

const MiB = 1024 ** 2;

/** FitOptions with `over` set and the rest left to the server. */
const options = (over: Partial<heads.FitOptions>): heads.FitOptions => ({
  l2: 1,
  classWeight: 0,
  ties: 0,
  folds: 0,
  hiddenLayerSizes: [],
  maxIterations: 0,
  ...over,
});

/** `n` samples of width `d` in two classes, separable along the first value. */
function samples(n: number, d: number): heads.FitSample[] {
  return Array.from({ length: n }, (_, i) => {
    const v = new Float32Array(d).fill(0.1);
    v[0] = i % 2 ? 1 + (i % 7) / 10 : -1 - (i % 5) / 10;
    return { features: f32Tensor(v, [d]), label: { $case: 'classIndex' as const, value: i % 2 } };
  });
}

async function failure(call: Promise<unknown>): Promise<{ code: string; details: string; ms: number }> {
  const t0 = performance.now();
  try {
    await call;
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
    return { code: Status[e.code], details: e.details, ms: performance.now() - t0 };
  }
  throw new Error('expected the call to fail');
}

describe('Heads Fit caps on free-form fields and the memory budget (real server)', () => {
  let dir = '';
  let svc: RunningHeads;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'curia-heads-caps-'));
    // Features of one Fit may take 2 MiB of the budget: 1024 samples × 512 do not fit.
    svc = await startHeadsServer({
      CURIA_HEADS_DIR: dir,
      CURIA_MEMORY_BUDGET_BYTES: String(2 * MiB),
      CURIA_MEMORY_BUDGET_WAIT_MS: '0',
    });
  });
  afterAll(async () => {
    await svc.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('two Fits with 40 MB descriptions are refused from start; ListHeads and GetInfo keep working', async () => {
    const huge = 'd'.repeat(40 * MiB);
    const before = process.memoryUsage().rss;
    const rs = await Promise.all(
      [1, 2].map(() => failure(svc.client.fit(fitStream({ description: huge }, samples(8, 4))))),
    );
    const after = process.memoryUsage().rss;
    for (const r of rs) {
      expect(r.code).toBe('INVALID_ARGUMENT');
      expect(r.details).toBe(
        `start.description is ${40 * MiB} bytes; the cap is ${MAX_DESCRIPTION_BYTES} bytes`,
      );
    }
    console.log(
      `two 40 MiB descriptions: INVALID_ARGUMENT in ${rs.map((r) => Math.round(r.ms)).join(', ')} ms; RSS +${Math.round((after - before) / MiB)} MiB (the messages themselves)`,
    );
    const ok = await svc.client.fit(
      fitStream({ description: 'é'.repeat(MAX_DESCRIPTION_BYTES / 2) }, samples(16, 4)),
    );
    expect(ok.head?.description).toHaveLength(MAX_DESCRIPTION_BYTES / 2);
    expect((await svc.client.listHeads({ model: '', allVersions: true })).heads).toHaveLength(1);
    expect((await svc.client.getInfo({})).info?.heads).toHaveLength(1);
  });

  it('a head stored before the cap is listed with its description cut to the cap', async () => {
    const head = await fitHead(
      'logistic',
      { data: new Float32Array([-1, 1, -1.2, 1.1]), rows: 4, cols: 1 },
      Int32Array.from([0, 1, 0, 1]),
      {
        name: 'legacy',
        folds: 2,
      },
    );
    await svc.store.add(head, {
      model: '',
      description: 'ü'.repeat(MiB),
      unit: '',
      dataset: '',
      demo: false,
    });
    const listed = (await svc.client.listHeads({ model: '', allVersions: false })).heads.find(
      (h) => h.name === 'legacy',
    );
    expect(Buffer.byteLength(listed!.description)).toBeLessThanOrEqual(MAX_DESCRIPTION_BYTES);
    expect(listed!.description.endsWith('ü…')).toBe(true);
  });

  it('refuses label names, iterations, layers and feature width past their caps, naming field and cap, in milliseconds', async () => {
    const cases: [Partial<heads.FitStart>, heads.FitSample[], string][] = [
      [
        {
          labelNames: Array.from({ length: 60_000 }, (_, i) => `label-${i}`),
          task: common.HeadTask.MULTILABEL,
        },
        samples(2, 4),
        `start.label_names has 60000 entries; the cap is ${FIT_CAPS.labelNames}`,
      ],
      [
        { labelNames: ['a', 'x'.repeat(300)] },
        samples(2, 4),
        'start.label_names[1] is 300 bytes; the cap is 256 bytes',
      ],
      [{ unit: 'u'.repeat(65) }, samples(2, 4), 'start.unit is 65 bytes; the cap is 64 bytes'],
      [
        { options: options({ maxIterations: 1e9 }) },
        samples(2, 4),
        `start.options.max_iterations is 1000000000; the cap is ${FIT_CAPS.maxIterations}`,
      ],
      [
        {
          kind: common.HeadKind.MLP_CLASSIFIER,
          options: options({ hiddenLayerSizes: Array(100).fill(8) as number[] }),
        },
        samples(2, 4),
        'start.options.hidden_layer_sizes has 100 layers; the cap is 8',
      ],
      [{}, samples(10, 262_144), `samples[0].features has 262144 values; the cap is ${FIT_CAPS.features}`],
      [
        {
          kind: common.HeadKind.MLP_CLASSIFIER,
          options: options({ hiddenLayerSizes: [4096, 4096] }),
        },
        samples(2, 4096),
        'on 4096 features make 33558528 MLP weights; the cap is 16777216',
      ],
    ];
    for (const [start, s, message] of cases) {
      const r = await failure(svc.client.fit(fitStream(start, s, 2)));
      expect(r.code, message).toBe('INVALID_ARGUMENT');
      expect(r.details).toContain(message);
      expect(r.ms).toBeLessThan(2000);
    }
  });

  it('takes the feature matrix from the memory budget: a Fit that cannot fit is RESOURCE_EXHAUSTED, the next small one succeeds', async () => {
    const r = await failure(svc.client.fit(fitStream({ head: 'big' }, samples(1100, 512))));
    expect(r.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.details).toMatch(/^Fit features \(\d+ samples × 512\) needs \d+ bytes .* of memory/);
    expect(r.details).toContain('CURIA_MEMORY_BUDGET_BYTES');
    expect(svc.server.memory.heldBytes).toBe(0);
    // Cox with D = 2048 holds three D × D float64 matrices (96 MiB) while it fits.
    const cox = await failure(
      svc.client.fit(
        fitStream(
          { head: 'cox', kind: common.HeadKind.COX, task: common.HeadTask.SURVIVAL },
          samples(40, 2048).map((x, i) => ({
            ...x,
            label: { $case: 'survival' as const, value: { time: i + 1, event: i % 2 === 0 } },
          })),
          8,
        ),
      ),
    );
    expect(cox.code).toBe('RESOURCE_EXHAUSTED');
    expect(cox.details).toContain(
      `Fit cox of 40 samples × 2048 needs ${40 * 2048 * 8 + 3 * 2048 * 2048 * 8} bytes`,
    );
    expect(svc.server.memory.heldBytes).toBe(0);
    const ok = await svc.client.fit(fitStream({ head: 'small' }, samples(64, 8)));
    expect(ok.head?.name).toBe('small');
    expect(svc.server.memory.heldBytes).toBe(0);
  });
});
