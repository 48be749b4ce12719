import { availableParallelism } from 'node:os';

import { describe, expect, it } from 'vitest';

import { cgroupCpuQuota, cpuBudget, type TextReader } from './cpu-budget.js';

/** A reader over a fake /sys/fs/cgroup. */
const fs =
  (files: Record<string, string>): TextReader =>
  (path) => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return text;
  };

describe('cpu budget', () => {
  it('reads the cgroup v2 and v1 CPU quotas', () => {
    expect(cgroupCpuQuota(fs({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeNull();
    expect(cgroupCpuQuota(fs({ '/sys/fs/cgroup/cpu.max': '250000 100000\n' }))).toBe(2.5);
    const v1 = {
      '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '50000\n',
      '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
    };
    expect(cgroupCpuQuota(fs(v1))).toBe(0.5);
    expect(cgroupCpuQuota(fs({ ...v1, '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n' }))).toBeNull();
    expect(cgroupCpuQuota(fs({}))).toBeNull();
    expect(cgroupCpuQuota(fs({ '/sys/fs/cgroup/cpu.max': 'garbage' }))).toBeNull();
  });

  it('caps the cores by the quota, rounded up, at least 1', () => {
    const cores = availableParallelism();
    expect(cpuBudget(fs({}))).toBe(cores);
    expect(cpuBudget(fs({ '/sys/fs/cgroup/cpu.max': '50000 100000' }))).toBe(1);
    expect(cpuBudget(fs({ '/sys/fs/cgroup/cpu.max': '150000 100000' }))).toBe(Math.min(cores, 2));
    expect(cpuBudget(fs({ '/sys/fs/cgroup/cpu.max': `${1000 * 100000} 100000` }))).toBe(cores);
    // This machine's own budget: a positive integer no larger than its cores.
    expect(cpuBudget()).toBeGreaterThanOrEqual(1);
    expect(cpuBudget()).toBeLessThanOrEqual(cores);
  });
});
