import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** Reads a (cgroup) file as text; throws when it is missing. */
export type TextReader = (path: string) => string;

const readText: TextReader = (path) => readFileSync(path, 'utf8');

/**
 * The CPU quota of this process's cgroup in CPUs (e.g. 2.5), or null when none is set: cgroup v2
 * `cpu.max` ("max 100000" = none, "250000 100000" = 2.5), else cgroup v1 `cpu.cfs_quota_us` /
 * `cpu.cfs_period_us` (-1 = none).
 */
export function cgroupCpuQuota(read: TextReader = readText): number | null {
  try {
    const [quota, period] = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/);
    if (quota === 'max') return null;
    const q = Number(quota);
    const p = Number(period);
    if (q > 0 && p > 0) return q / p;
  } catch {
    // not cgroup v2 (or no cpu controller): try v1
  }
  try {
    const q = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').trim());
    const p = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us').trim());
    if (q > 0 && p > 0) return q / p;
  } catch {
    // no cgroup CPU controller visible
  }
  return null;
}

let cached: number | undefined;

/**
 * CPUs this process may keep busy, for sizing thread pools (ORT intra-op threads, the slice pool):
 * `os.availableParallelism()` (the affinity mask), capped by the cgroup CPU quota rounded up.
 * Kubernetes CPU limits are such a quota and the affinity mask does not show them: a pod limited
 * to 4 CPUs on a 64-core node would otherwise start 64-thread pools and spend its time throttled.
 * Read once per process (pass `read` to compute afresh, for tests).
 */
export function cpuBudget(read?: TextReader): number {
  if (!read && cached !== undefined) return cached;
  const cores = availableParallelism();
  const quota = cgroupCpuQuota(read);
  const budget = quota === null ? cores : Math.max(1, Math.min(cores, Math.ceil(quota)));
  if (!read) cached = budget;
  return budget;
}
