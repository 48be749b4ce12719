import { CuriaError } from '@curia/errors';
import { describe, expect, it } from 'vitest';

import {
  cgroupMemoryLimit,
  createMemoryBudget,
  memoryBudgetCapacity,
  MemoryBudget,
} from './memory-budget.js';
import { ServiceMetrics } from './metrics.js';
import { loadConfig, serviceEnvSchema } from './config.js';
import { serviceInfo } from './service-info.js';

const MiB = 1024 ** 2;

function reader(files: Record<string, string>): (p: string) => string {
  return (p) => {
    const v = files[p];
    if (v === undefined) throw new Error(`ENOENT ${p}`);
    return v;
  };
}

async function refusal(p: Promise<unknown>): Promise<CuriaError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(CuriaError);
    return e as CuriaError;
  }
  throw new Error('expected a refusal');
}

describe('cgroupMemoryLimit / memoryBudgetCapacity', () => {
  it('reads cgroup v2 memory.max, then v1 memory.limit_in_bytes; max or a huge v1 value is no limit', () => {
    expect(cgroupMemoryLimit(reader({ '/sys/fs/cgroup/memory.max': '3221225472\n' }))).toBe(3 * 1024 ** 3);
    expect(cgroupMemoryLimit(reader({ '/sys/fs/cgroup/memory.max': 'max\n' }))).toBeNull();
    expect(cgroupMemoryLimit(reader({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '1073741824\n' }))).toBe(
      1024 ** 3,
    );
    expect(
      cgroupMemoryLimit(reader({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712' })),
    ).toBeNull();
    expect(cgroupMemoryLimit(reader({}))).toBeNull();
  });

  it('takes the explicit bytes, else the fraction of the cgroup limit, else of the machine', () => {
    const v2 = reader({ '/sys/fs/cgroup/memory.max': String(1000 * MiB) });
    expect(
      memoryBudgetCapacity({ CURIA_MEMORY_BUDGET_BYTES: 5, CURIA_MEMORY_BUDGET_FRACTION: 0.6 }, v2),
    ).toEqual({ bytes: 5, source: 'CURIA_MEMORY_BUDGET_BYTES' });
    expect(memoryBudgetCapacity({ CURIA_MEMORY_BUDGET_FRACTION: 0.5 }, v2).bytes).toBe(500 * MiB);
    const none = memoryBudgetCapacity({ CURIA_MEMORY_BUDGET_FRACTION: 0.5 }, reader({}));
    expect(none.bytes).toBeGreaterThan(0);
    expect(none.source).toContain("machine's memory");
  });
});

describe('MemoryBudget', () => {
  it('refuses at once what alone exceeds the capacity, naming bytes, capacity and the variable', async () => {
    const refused: string[] = [];
    const b = new MemoryBudget({ capacity: 100 * MiB, waitMs: 5000, onRefuse: (r) => refused.push(r) });
    const t0 = performance.now();
    const err = await refusal(b.acquire(200 * MiB, { what: 'volume 10x10x10 int16' }));
    expect(performance.now() - t0).toBeLessThan(50);
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(err.message).toContain('volume 10x10x10 int16 needs 209715200 bytes (200.0 MiB)');
    expect(err.message).toContain('memory budget of 104857600 bytes (100.0 MiB)');
    expect(err.message).toContain('CURIA_MEMORY_BUDGET_BYTES');
    expect(err.retryAfterMs).toBeUndefined();
    expect(refused).toEqual(['too-large']);
    expect(b.heldBytes).toBe(0);
  });

  it('admits while there is room, waits FIFO for a release, and refuses with a retry hint after waitMs', async () => {
    const held: number[] = [];
    const b = new MemoryBudget({ capacity: 100, waitMs: 40, onChange: (n) => held.push(n) });
    const r1 = await b.acquire(60, { what: 'a' });
    const order: string[] = [];
    const p2 = b.acquire(60, { what: 'b', waitMs: 1000 }).then((r) => (order.push('b'), r));
    const p3 = b.acquire(10, { what: 'c', waitMs: 1000 }).then((r) => (order.push('c'), r));
    expect(b.waiting).toBe(2); // c fits, but does not overtake b
    r1();
    r1(); // idempotent
    const [r2, r3] = await Promise.all([p2, p3]);
    expect(order).toEqual(['b', 'c']);
    expect(b.heldBytes).toBe(70);
    const t0 = performance.now();
    const err = await refusal(b.acquire(50, { what: 'd' }));
    const waited = performance.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(35);
    expect(waited).toBeLessThan(500);
    expect(err.code).toBe('RESOURCE_EXHAUSTED');
    expect(err.retryAfterMs).toBe(100);
    expect(err.message).toContain('retry after 100ms');
    expect(b.waiting).toBe(0);
    r2();
    r3();
    expect(b.heldBytes).toBe(0);
    expect(held).toEqual([60, 0, 60, 70, 10, 0]);
  });

  it('refuses a busy budget at once with waitMs 0, and a cancelled wait with CANCELLED', async () => {
    const b = new MemoryBudget({ capacity: 100, waitMs: 0 });
    const r = await b.acquire(100, { what: 'a' });
    expect((await refusal(b.acquire(1, { what: 'b' }))).code).toBe('RESOURCE_EXHAUSTED');
    const ac = new AbortController();
    const p = b.acquire(1, { what: 'c', signal: ac.signal, waitMs: 10_000 });
    ac.abort();
    expect((await refusal(p)).code).toBe('CANCELLED');
    r();
    expect(b.waiting).toBe(0);
    (await b.acquire(100, { what: 'd' }))();
  });

  it('reports capacity, held bytes and refusals as metrics', async () => {
    const m = new ServiceMetrics('test', { processMetrics: false });
    const b = createMemoryBudget(
      { CURIA_MEMORY_BUDGET_BYTES: 1000, CURIA_MEMORY_BUDGET_FRACTION: 0.6, CURIA_MEMORY_BUDGET_WAIT_MS: 0 },
      m,
    );
    const r = await b.acquire(400, { what: 'x' });
    await refusal(b.acquire(2000, { what: 'y' }));
    const text = await m.registry.metrics();
    expect(text).toContain('curia_memory_budget_capacity_bytes{curia_service="test"} 1000');
    expect(text).toContain('curia_memory_budget_held_bytes{curia_service="test"} 400');
    expect(text).toContain('curia_memory_budget_refusals_total{reason="too-large",curia_service="test"} 1');
    r();
  });

  it('GetInfo reports the capacity as limits.memory_budget_bytes', () => {
    const env = loadConfig(serviceEnvSchema, { CURIA_MEMORY_BUDGET_BYTES: '123456789' });
    expect(serviceInfo('x.v1.X', env).limits.memory_budget_bytes).toBe('123456789');
  });
});
