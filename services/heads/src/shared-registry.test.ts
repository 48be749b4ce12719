import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ClientError, Status, common, type heads } from '@curia/client';
import { startTestPostgres } from '@curia/registry/testing';
import { sharedPathOrSkip } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { f32Tensor } from './codec.js';
import { startHeadsServer, type RunningHeads } from './testing/start-server.js';

// Two Heads replicas on one real PostgreSQL (issue #18). Skipped with the reason printed when
// PostgreSQL is not installed; under CI it must be.
const started = await startTestPostgres();
const pg = 'unavailable' in started ? undefined : started;
if ('unavailable' in started) {
  if (process.env.CI === 'true') throw new Error(`PostgreSQL is required under CI: ${started.unavailable}`);
  console.log(`skipping the shared head registry tests of the Heads service: ${started.unavailable}`);
}
afterAll(async () => {
  await pg?.destroy();
});

const D = 4;
/** 20 separable samples (10 per class) whose class-1 side shifts with `shift`, so heads differ. */
function samples(shift: number): heads.FitSample[] {
  return Array.from({ length: 20 }, (_, i) => {
    const c = i % 2;
    const v = Float32Array.from({ length: D }, (_, j) => (c ? 1 + shift : -1) + ((i * 7 + j * 3) % 5) / 10);
    return { features: f32Tensor(v, [D]), label: { $case: 'classIndex' as const, value: c } };
  });
}

/** A Fit of `name`; `promote` (the default here) makes it what the unversioned name serves at once. */
function fitOf(
  name: string,
  shift = 0,
  idempotencyKey = '',
  promote = true,
): AsyncIterable<heads.FitRequest> {
  const start: heads.FitStart = {
    head: name,
    kind: common.HeadKind.LOGISTIC,
    task: common.HeadTask.CLASSIFICATION,
    feature: { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
    model: 'tiny-mlp@1',
    labelNames: [],
    description: `fitted with shift ${shift}`,
    unit: '',
    dataset: 'synthetic',
    idempotencyKey,
    demo: false,
    promote,
  };
  // eslint-disable-next-line @typescript-eslint/require-await -- an async iterable is what Fit takes
  return (async function* () {
    yield { msg: { $case: 'start' as const, value: start } };
    yield { msg: { $case: 'samples' as const, value: { samples: samples(shift) } } };
  })();
}

async function fit(svc: RunningHeads, name: string, shift = 0, key = '', promote = true): Promise<string> {
  const res = await svc.client.fit(fitOf(name, shift, key, promote));
  return res.head!.version;
}

/** The version an unversioned Predict of `name` answers with. */
async function served(svc: RunningHeads, name: string): Promise<string> {
  const res = await svc.client.predict({
    head: name,
    model: 'tiny-mlp@1',
    slices: [{ sliceId: 0, features: [{ requestIndex: 0, tensor: f32Tensor(new Float32Array(D), [D]) }] }],
  });
  return res.head!.version;
}

/** Polls `probe` until it returns `want` (errors count as not yet); returns the time it took, ms. */
async function until<T>(probe: () => Promise<T>, want: T, ms: number): Promise<number> {
  const t0 = performance.now();
  let last: unknown;
  for (;;) {
    try {
      last = await probe();
      if (last === want) return performance.now() - t0;
    } catch (e) {
      last = e;
    }
    if (performance.now() - t0 > ms)
      throw new Error(`not ${String(want)} within ${ms} ms (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function codeOf(call: Promise<unknown>): Promise<Status | undefined> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  return err instanceof ClientError ? err.code : undefined;
}

const versionsOf = async (svc: RunningHeads): Promise<string[]> =>
  (await svc.client.listHeads({ allVersions: true })).heads.map((h) => `${h.name}@${h.version}`);

describe.skipIf(!pg)('Heads replicas sharing one PostgreSQL head registry', () => {
  let dir = '';
  let a: RunningHeads;
  let b: RunningHeads;
  const start = (env: Record<string, string> = {}): Promise<RunningHeads> =>
    startHeadsServer({
      // Never created: with a DSN the store is the database.
      CURIA_HEADS_DIR: join(dir, 'unused'),
      CURIA_HEADS_REGISTRY_DSN: pg!.dsn,
      ...env,
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'curia-heads-pg-'));
    [a, b] = await Promise.all([start({ CURIA_REPLICA: 'a' }), start({ CURIA_REPLICA: 'b' })]);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a Fit through A is served through B at once, unversioned and by version', async () => {
    expect(await fit(a, 'liver')).toBe('1');
    const first = await until(() => served(b, 'liver'), '1', 2000);
    expect(await fit(a, 'liver', 0.5)).toBe('2');
    const second = await until(() => served(b, 'liver'), '2', 2000);
    console.log(`B served A's new version after ${first.toFixed(0)} ms, then ${second.toFixed(0)} ms`);
    expect((await b.client.getHead({ name: 'liver', version: '1' })).head?.description).toBe(
      'fitted with shift 0',
    );
    expect((await b.client.listHeads({})).heads.map((h) => `${h.name}@${h.version}`)).toEqual(['liver@2']);
    const info = await b.client.getInfo({});
    expect(info.info?.heads.map((h) => `${h.name}@${h.version}`)).toEqual(['liver@2']);
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });

  it('concurrent Fits of one name through A and B get distinct versions, none lost', async () => {
    const versions = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => fit(i % 2 ? b : a, 'spleen', i / 10)));
    expect([...versions].sort((x, y) => Number(x) - Number(y))).toEqual(['1', '2', '3', '4', '5', '6']);
    const want = [...versions].map((v) => `spleen@${v}`).sort();
    const spleens = async (svc: RunningHeads): Promise<string> =>
      (await versionsOf(svc))
        .filter((v) => v.startsWith('spleen@'))
        .sort()
        .join();
    for (const svc of [a, b]) await until(() => spleens(svc), want.join(), 2000);
    expect(await served(a, 'spleen')).toBe('6');
    await until(() => served(b, 'spleen'), '6', 2000);
    // An idempotent retry through the other replica gets the version the first call stored.
    const key = `k-${Date.now()}`;
    const once = await fit(a, 'kidney', 0, key);
    expect(await fit(b, 'kidney', 0, key)).toBe(once);
    expect((await versionsOf(b)).filter((v) => v.startsWith('kidney@'))).toEqual([`kidney@${once}`]);
  });

  it('a Fit without promote leaves the unversioned name on both replicas; PromoteHead through A moves B at once', async () => {
    expect(await fit(a, 'pancreas', 0, '', false)).toBe('1'); // a new name's first version is promoted
    await until(() => served(b, 'pancreas'), '1', 2000);
    expect(await fit(b, 'pancreas', 0.5, '', false)).toBe('2');
    await until(async () => (await versionsOf(a)).includes('pancreas@2'), true, 2000);
    expect(await served(a, 'pancreas')).toBe('1');
    expect(await served(b, 'pancreas')).toBe('1');
    const p = await a.client.promoteHead({ name: 'pancreas', version: '2' });
    expect([p.head?.version, p.head?.promoted, p.previousVersion]).toEqual(['2', true, '1']);
    const lag = await until(() => served(b, 'pancreas'), '2', 2000);
    console.log(`B served A's promotion after ${lag.toFixed(0)} ms`);
    expect((await b.client.getHead({ name: 'pancreas', version: '1' })).promotedVersion).toBe('2');
    expect(await codeOf(b.client.promoteHead({ name: 'pancreas', version: '9' }))).toBe(Status.NOT_FOUND);
    expect(await served(a, 'pancreas')).toBe('2');
  });

  it('a quota refuses a Fit with RESOURCE_EXHAUSTED and stores nothing', async () => {
    const c = await start({ CURIA_HEADS_REGISTRY_MAX_VERSIONS_PER_NAME: '6' });
    try {
      expect(await codeOf(c.client.fit(fitOf('spleen', 9)))).toBe(Status.RESOURCE_EXHAUSTED);
      expect((await versionsOf(c)).filter((v) => v.startsWith('spleen@'))).toHaveLength(6);
    } finally {
      await c.close();
    }
  });

  it('restarting both replicas loses nothing', async () => {
    const before = await versionsOf(a);
    expect(before).toHaveLength(2 + 2 + 6 + 1);
    await Promise.all([a.close(), b.close()]);
    [a, b] = await Promise.all([start({ CURIA_REPLICA: 'a' }), start({ CURIA_REPLICA: 'b' })]);
    expect(await versionsOf(a)).toEqual(before);
    expect(await versionsOf(b)).toEqual(before);
    expect(await served(b, 'liver')).toBe('2');
  });

  it('without the database Fit answers UNAVAILABLE and Predict keeps working; when it is back Fit works', async () => {
    await pg!.stop();
    try {
      expect(await codeOf(a.client.fit(fitOf('liver', 1)))).toBe(Status.UNAVAILABLE);
      expect(await codeOf(b.client.fit(fitOf('liver', 1)))).toBe(Status.UNAVAILABLE);
      expect(await served(b, 'liver')).toBe('2');
      expect(await served(a, 'spleen')).toBe('6');
      expect((await b.client.getHead({ name: 'liver', version: '1' })).head?.version).toBe('1');
    } finally {
      await pg!.start();
    }
    const back = await until(() => fit(a, 'liver', 2), '3', 15_000);
    console.log(`Fit stored again ${back.toFixed(0)} ms after the database came back`);
    await until(() => served(b, 'liver'), '3', 5000);
  });

  it.runIf(sharedPathOrSkip('reference/heads'))(
    'replicas starting together import a Curia head folder once',
    async () => {
      const env = { CURIA_HEADS_IMPORT: join(sharedPathOrSkip('reference/heads')!, 'cls-linear-2d') };
      const [c, d] = await Promise.all([start(env), start(env)]);
      try {
        const imported = async (svc: RunningHeads): Promise<string> =>
          (await versionsOf(svc)).filter((v) => v.startsWith('cls-linear-2d@')).join();
        expect(await imported(c)).toBe('cls-linear-2d@1');
        expect(await imported(d)).toBe('cls-linear-2d@1');
      } finally {
        await Promise.all([c.close(), d.close()]);
      }
    },
  );
});

describe.skipIf(!pg)('a Heads process whose registry cannot be opened', () => {
  it('reports NOT_SERVING with one error line naming the database without its password, and exits 1', async () => {
    const bad = 'not-the-password-1f3a';
    const dsn = pg!.dsn.replace(pg!.password, bad);
    expect(dsn).toContain(bad);
    const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));
    expect(existsSync(main), `${main} is missing: npm run build first`).toBe(true);
    const child = spawn(process.execPath, [main], {
      env: {
        ...process.env,
        CURIA_GRPC_HOST: '127.0.0.1',
        CURIA_HEADS_REGISTRY_DSN: dsn,
        CURIA_HEADS_DIR: join(tmpdir(), 'curia-heads-never-created'),
        CURIA_SHUTDOWN_GRACE_MS: '0',
        CURIA_PROCESS_METRICS: 'false',
        OTEL_SDK_DISABLED: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(out).not.toContain(bad);
    const errors = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message?: string } })
      .filter((l) => l.level >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/fatal/);
    expect(errors[0]!.err?.message).toMatch(
      /heads cannot start: UNAVAILABLE: cannot connect to the head registry database \(postgresql:\/\/curia@127\.0\.0\.1:\d+\/postgres: password authentication failed/,
    );
  }, 20_000);
});
