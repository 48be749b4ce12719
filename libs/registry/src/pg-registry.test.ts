import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { RegistryChange, VersionCodec } from '@curia/heads';
import { NOTE_CODEC, note, type Note } from '@curia/heads/testing';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';

import { PgHeadRegistry, type PgHeadRegistryOptions } from './pg-registry.js';
import { findPostgresTool, startTestPostgres, type TestPostgres } from './testing.js';

const CODEC: VersionCodec<Note> = {
  ...NOTE_CODEC,
  metadata: (n) => ({ length: n.text.length }),
  fitReport: (n) => ({ text: n.text }),
};

const started = await startTestPostgres();
const server: TestPostgres | undefined = 'unavailable' in started ? undefined : started;
if ('unavailable' in started) {
  if (process.env.CI === 'true') throw new Error(`PostgreSQL is required under CI: ${started.unavailable}`);
  console.log(`skipping the PostgreSQL head registry tests: ${started.unavailable}`);
}

afterAll(async () => {
  await server?.destroy();
});

/** Resolves once `pred()` holds, checking after each change `reg` reports; rejects after `ms`. */
function waitFor(reg: PgHeadRegistry<Note>, pred: () => boolean, ms = 5000): Promise<void> {
  if (pred()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`condition not met within ${ms} ms`));
    }, ms);
    const off = reg.onChange(() => {
      if (!pred()) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

async function until(pred: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(!server)('PgHeadRegistry against a real PostgreSQL (two instances = two replicas)', () => {
  const open = (
    kind: string,
    extra: Partial<PgHeadRegistryOptions<Note>> = {},
  ): Promise<PgHeadRegistry<Note>> =>
    PgHeadRegistry.open({
      dsn: server!.dsn,
      kind,
      codec: CODEC,
      reconnectMs: { min: 50, max: 500 },
      ...extra,
    });

  /** Runs `body` with two instances of one kind (two replicas), closing both after. */
  const pair = async (
    kind: string,
    body: (a: PgHeadRegistry<Note>, b: PgHeadRegistry<Note>) => Promise<void>,
  ): Promise<void> => {
    const [a, b] = await Promise.all([open(kind), open(kind)]);
    try {
      await body(a, b);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  };

  it('migrates once when replicas open together, and versions cannot be updated in place', async () => {
    const regs = await Promise.all([1, 2, 3, 4].map(() => open('heads')));
    const c = new pg.Client(server!.dsn);
    await c.connect();
    try {
      const m = await c.query<{ version: number }>('SELECT version FROM curia_schema_migrations');
      expect(m.rows.map((r) => r.version)).toEqual([1]);
      await regs[0]!.add('imm', note('x'), { creator: 't' });
      await expect(
        c.query("UPDATE curia_head_versions SET creator = 'evil' WHERE name = 'imm'"),
      ).rejects.toThrow(/immutable/);
    } finally {
      await c.end();
      await Promise.all(regs.map((r) => r.close()));
    }
  });

  it('shows an add through A on B at once, and a promote through B on A', async () => {
    await pair('heads', async (a, b) => {
      const seen: RegistryChange[] = [];
      b.onChange((ch) => seen.push(ch));
      const t0 = Date.now();
      const v1 = await a.add('liver', note('one'), { creator: 'replica-a' });
      await waitFor(b, () => b.all().some((v) => v.name === 'liver' && v.version === v1.version));
      const lagMs = Date.now() - t0;
      expect(lagMs).toBeLessThan(2000);
      expect(b.get('liver', '1')).toMatchObject({
        item: { text: 'one', name: 'liver', version: '1' },
        creator: 'replica-a',
      });
      expect(seen).toContainEqual({ kind: 'version', name: 'liver', version: '1' });

      await a.add('liver', note('two'), { creator: 'replica-a' });
      await waitFor(b, () => b.all().some((v) => v.name === 'liver' && v.version === '2'));
      // A new name's first version is promoted; a later add without `promote` moves nothing.
      expect([a.promoted('liver'), b.promoted('liver')]).toEqual(['1', '1']);
      expect([a.resolve('liver').version, b.resolve('liver').version]).toEqual(['1', '1']);

      const p = await b.promote('liver', '2', { creator: 'ops' });
      expect([p.version, p.previous]).toEqual(['2', '1']);
      expect(b.resolve('liver').version).toBe('2');
      await waitFor(a, () => a.resolve('liver').version === '2');
      expect(seen).toContainEqual({ kind: 'promote', name: 'liver', version: '2' });
      await b.promote('liver', '1', { creator: 'ops' });
      await waitFor(a, () => a.resolve('liver').version === '1');
      expect(a.get('liver').item.text).toBe('one');

      const v3 = await b.add('liver', note('three'), { creator: 'replica-b', promote: true });
      await waitFor(a, () => a.resolve('liver').version === v3.version);
      expect(a.resolved().find((v) => v.name === 'liver')?.item.text).toBe('three');
    });
  });

  it('a name stored before promotion was explicit (no alias): the next add pins what resolved, in its transaction', async () => {
    await pair('heads', async (a, b) => {
      await a.add('legacy', note('one'), { creator: 'a' });
      await a.add('legacy', note('two'), { creator: 'a', promote: true });
      const c = new pg.Client(server!.dsn);
      await c.connect();
      try {
        await c.query("DELETE FROM curia_head_aliases WHERE kind = 'heads' AND name = 'legacy'");
      } finally {
        await c.end();
      }
      // A fresh replica sees no alias: the name resolves to its latest, as before promotion existed.
      const fresh = await open('heads');
      try {
        expect([fresh.promoted('legacy'), fresh.resolve('legacy').version]).toEqual([undefined, '2']);
        expect((await fresh.add('legacy', note('three'), { creator: 'fresh' })).version).toBe('3');
        expect([fresh.promoted('legacy'), fresh.resolve('legacy').version]).toEqual(['2', '2']);
        await waitFor(b, () => b.all().some((v) => v.name === 'legacy' && v.version === '3'));
        expect(b.resolve('legacy').version).toBe('2');
      } finally {
        await fresh.close();
      }
    });
  });

  it('gives concurrent adds of one name from two replicas distinct consecutive versions, none lost', async () => {
    await pair('heads', async (a, b) => {
      const adds = Array.from({ length: 24 }, (_, i) =>
        (i % 2 ? a : b).add('race', note(`n${i}`), { creator: i % 2 ? 'a' : 'b' }),
      );
      const got = await Promise.all(adds);
      const versions = got.map((v) => Number(v.version)).sort((x, y) => x - y);
      expect(versions).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
      // Every text is stored under exactly one version, and both replicas converge on all 24.
      await until(() => a.all().filter((v) => v.name === 'race').length === 24);
      await until(() => b.all().filter((v) => v.name === 'race').length === 24);
      const texts = b
        .all()
        .filter((v) => v.name === 'race')
        .map((v) => v.item.text);
      expect(new Set(texts).size).toBe(24);
      for (const v of got) expect(a.get('race', v.version).item.text).toBe(v.item.text);
    });
  });

  it('promotes atomically: a reader only ever sees a stored version, and the last promotion wins everywhere', async () => {
    await pair('heads', async (a, b) => {
      for (let i = 1; i <= 4; i++) await a.add('atom', note(`t${i}`), { creator: 'a' });
      await until(() => b.all().filter((v) => v.name === 'atom').length === 4);
      let reading = true;
      const bad: string[] = [];
      let reads = 0;
      const reader = (async () => {
        while (reading) {
          for (const r of [a, b]) {
            const v = r.resolve('atom');
            reads++;
            if (v.item.text !== `t${v.version}` || v.item.version !== v.version)
              bad.push(`${v.version}:${v.item.text}`);
          }
          await new Promise((res) => setImmediate(res));
        }
      })();
      const order = ['2', '4', '1', '3', '2', '4', '3', '1'];
      await Promise.all(order.map((ver, i) => (i % 2 ? a : b).promote('atom', ver, { creator: 'ops' })));
      const c = new pg.Client(server!.dsn);
      await c.connect();
      const final = String(
        (
          await c.query<{ version: number }>(
            "SELECT version FROM curia_head_aliases WHERE kind = 'heads' AND name = 'atom'",
          )
        ).rows[0]!.version,
      );
      await c.end();
      await until(() => a.resolve('atom').version === final && b.resolve('atom').version === final);
      reading = false;
      await reader;
      expect(bad).toEqual([]);
      expect(reads).toBeGreaterThan(0);
      await expect(a.promote('atom', '9', { creator: 'ops' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(a.promote('nope', '1', { creator: 'ops' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(a.promote('atom', 'x', { creator: 'ops' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
      expect(a.resolve('atom').version).toBe(final);
    });
  });

  it('returns the stored version for a repeated idempotency key, also when both replicas race it', async () => {
    await pair('heads', async (a, b) => {
      const [x, y] = await Promise.all([
        a.add('idem', note('first', 'key-1'), { creator: 'a' }),
        b.add('idem', note('second', 'key-1'), { creator: 'b' }),
      ]);
      expect(x.version).toBe(y.version);
      expect(x.item.text).toBe(y.item.text);
      const again = await a.add('idem', note('third', 'key-1'), { creator: 'a' });
      expect(again.version).toBe(x.version);
      // The key names the stored version whatever name a retry sends.
      expect((await b.add('idem-other', note('fourth', 'key-1'), { creator: 'b' })).name).toBe('idem');
      await until(() => b.byIdempotencyKey('key-1')?.version === x.version);
      expect(a.all().filter((v) => v.name === 'idem')).toHaveLength(1);
    });
  });

  it('refuses writes past the per-name and total quotas with RESOURCE_EXHAUSTED naming the quota', async () => {
    const reg = await open('quota', {
      quotas: { maxVersionsPerName: 2, maxVersionsTotal: 3, maxBytesPerName: 400, maxBytesTotal: 100_000 },
    });
    try {
      await reg.add('q', note('a'), { creator: 't' });
      await reg.add('q', note('b'), { creator: 't' });
      await expect(reg.add('q', note('c'), { creator: 't' })).rejects.toMatchObject({
        code: 'RESOURCE_EXHAUSTED',
        message: expect.stringContaining('maxVersionsPerName (2)') as unknown,
      });
      await expect(reg.add('big', note('x'.repeat(1000)), { creator: 't' })).rejects.toMatchObject({
        code: 'RESOURCE_EXHAUSTED',
        message: expect.stringContaining('maxBytesPerName (400)') as unknown,
      });
      await reg.add('r', note('a'), { creator: 't' });
      await expect(reg.add('s', note('a'), { creator: 't' })).rejects.toMatchObject({
        code: 'RESOURCE_EXHAUSTED',
        message: expect.stringContaining('maxVersionsTotal (3)') as unknown,
      });
      expect(reg.all().map((v) => `${v.name}@${v.version}`)).toEqual(['q@1', 'q@2', 'r@1']);
      // A refused add allocates nothing: the counter did not move.
      const other = await open('quota', { quotas: { maxVersionsPerName: 5 } });
      expect((await other.add('q', note('c'), { creator: 't' })).version).toBe('3');
      await other.close();
    } finally {
      await reg.close();
    }
  });

  it('refuses writes with UNAVAILABLE while the database is down, serves reads from cache, and recovers', async () => {
    const logs: string[] = [];
    const a = await open('outage', { reconnectMs: { min: 1500, max: 1500 }, log: (_l, m) => logs.push(m) });
    const b = await open('outage', { reconnectMs: { min: 50, max: 200 } });
    try {
      await a.add('o', note('before'), { creator: 'a', promote: true });
      await until(() => b.all().length === 1);

      await server!.stop();
      await until(() => !a.available && !b.available);
      const err = await a.add('o', note('during'), { creator: 'a' }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'UNAVAILABLE' });
      const msg = (err as Error).message;
      expect(msg).toMatch(/unreachable|lost/);
      expect(msg).toContain('127.0.0.1');
      expect(msg).not.toContain(server!.password);
      await expect(b.promote('o', '1', { creator: 'b' })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect(a.resolve('o').item.text).toBe('before');
      expect(b.get('o', '1').item.text).toBe('before');
      expect(logs.join('\n')).not.toContain(server!.password);
      expect(logs.some((l) => l.includes('lost'))).toBe(true);

      await server!.start();
      // B (short backoff) is back first and writes while A is still away: A must catch up on reconnect.
      await until(() => b.available);
      const added = await b.add('o', note('meanwhile'), { creator: 'b', promote: true });
      await until(() => a.available);
      await until(() => a.resolve('o').version === added.version);
      expect(a.get('o', added.version).item.text).toBe('meanwhile');
      expect(logs.some((l) => l.includes('reconnected'))).toBe(true);
      // And A writes again.
      const v3 = await a.add('o', note('after'), { creator: 'a' });
      await waitFor(b, () => b.all().some((v) => v.name === 'o' && v.version === v3.version));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('re-listens and catches up when its connections are killed while the server stays up', async () => {
    await pair('killed', async (a, b) => {
      await a.add('x', note('one'), { creator: 'a' });
      await until(() => b.all().length === 1);
      const admin = new pg.Client(server!.dsn);
      await admin.connect();
      try {
        const killed = await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        );
        expect(killed.rowCount).toBeGreaterThanOrEqual(2);
      } finally {
        await admin.end();
      }
      await until(() => a.available && b.available);
      const v2 = await b.add('x', note('two'), { creator: 'b', promote: true });
      await waitFor(a, () => a.resolve('x').version === v2.version);
    });
  });

  it('keeps everything across a restart of both replicas', async () => {
    const a = await open('restart');
    const b = await open('restart');
    await a.add('k', note('one'), { creator: 'a' });
    await b.add('k', note('two'), { creator: 'b' });
    await a.add('m', note('m1', 'key-m'), { creator: 'a' });
    await b.promote('k', '1', { creator: 'ops' });
    await until(() => a.all().length === 3 && a.promoted('k') === '1');
    const before = a.all().map((v) => `${v.name}@${v.version}:${v.item.text}:${v.creator}`);
    await Promise.all([a.close(), b.close()]);
    await server!.stop();
    await server!.start();
    const [a2, b2] = await Promise.all([open('restart'), open('restart')]);
    try {
      for (const r of [a2, b2]) {
        expect(
          r
            .all()
            .map((v) => `${v.name}@${v.version}:${v.item.text}:${v.creator}`)
            .sort(),
        ).toEqual(before.sort());
        expect(r.resolve('k').version).toBe('1');
        expect(r.resolve('m').version).toBe('1');
        expect(r.byIdempotencyKey('key-m')?.name).toBe('m');
      }
      expect((await b2.add('k', note('three'), { creator: 'b' })).version).toBe('3');
    } finally {
      await Promise.all([a2.close(), b2.close()]);
    }
  });

  it('backs up with pg_dump and restores with pg_restore into a fresh database, nothing lost', async () => {
    const a = await open('backup');
    await a.add('b', note('one'), { creator: 'a' });
    await a.add('b', note('two', 'key-b'), { creator: 'a' });
    await a.promote('b', '1', { creator: 'ops' });
    await a.close();
    const dump = join(tmpdir(), `curia-registry-${process.pid}.dump`);
    try {
      execFileSync(findPostgresTool('pg_dump')!, [
        '--format=custom',
        `--file=${dump}`,
        `--dbname=${server!.dsn}`,
      ]);
      const admin = new pg.Client(server!.dsn);
      await admin.connect();
      await admin.query('CREATE DATABASE restored');
      await admin.end();
      const restored = server!.dsn.replace(/\/postgres$/, '/restored');
      execFileSync(findPostgresTool('pg_restore')!, ['--no-owner', `--dbname=${restored}`, dump]);
      const r = await open('backup', { dsn: restored });
      try {
        expect(r.all().map((v) => `${v.name}@${v.version}:${v.item.text}`)).toEqual(['b@1:one', 'b@2:two']);
        expect(r.resolve('b').version).toBe('1');
        expect(r.byIdempotencyKey('key-b')?.version).toBe('2');
        expect((await r.add('b', note('three'), { creator: 'r', promote: true })).version).toBe('3');
        expect(r.resolve('b').version).toBe('3');
      } finally {
        await r.close();
      }
    } finally {
      await rm(dump, { force: true });
    }
  });

  it('fails to open with a clear error and no password when the database is unreachable or refuses', async () => {
    const wrong = server!.dsn.replace(encodeURIComponent(server!.password), 'wrong-secret');
    const e1 = await PgHeadRegistry.open({ dsn: wrong, kind: 'heads', codec: CODEC }).catch(
      (e: unknown) => e,
    );
    expect(e1).toMatchObject({ code: 'UNAVAILABLE' });
    expect((e1 as Error).message).toMatch(/cannot connect.*password authentication failed/);
    expect((e1 as Error).message).not.toContain('wrong-secret');

    const closedPort = server!.dsn.replace(`:${server!.port}/`, ':1/');
    const e2 = await PgHeadRegistry.open({ dsn: closedPort, kind: 'heads', codec: CODEC }).catch(
      (e: unknown) => e,
    );
    expect(e2).toMatchObject({ code: 'UNAVAILABLE' });
    expect((e2 as Error).message).not.toContain(server!.password);

    // A schema newer than this build: refused at open (FAILED_PRECONDITION), never half-served.
    const admin = new pg.Client(server!.dsn);
    await admin.connect();
    await admin.query('CREATE DATABASE newer');
    await admin.end();
    const newer = server!.dsn.replace(/\/postgres$/, '/newer');
    (await open('heads', { dsn: newer })).close().catch(() => undefined);
    const c = new pg.Client(newer);
    await c.connect();
    await c.query("INSERT INTO curia_schema_migrations (version, name) VALUES (99, 'from the future')");
    await c.end();
    const e3 = await open('heads', { dsn: newer }).catch((e: unknown) => e);
    expect(e3).toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect((e3 as Error).message).toMatch(/schema is at version 99, newer than this build knows \(1\)/);
  });
});
