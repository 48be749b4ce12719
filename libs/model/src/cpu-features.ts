import { readFileSync } from 'node:fs';

/** x86 flags that decide how fast (and, without VNNI, how exactly) ORT's INT8 kernels run. */
export const INT8_CPU_FLAGS = ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8'] as const;

/** This host's CPU model and which {@link INT8_CPU_FLAGS} it has (from /proc/cpuinfo). */
export interface Int8CpuFeatures {
  readonly model: string;
  /** The flags of {@link INT8_CPU_FLAGS} present; null when /proc/cpuinfo is unreadable. */
  readonly present: readonly string[] | null;
}

/** Reads {@link Int8CpuFeatures} from `/proc/cpuinfo` (Linux); `present: null` elsewhere. */
export function int8CpuFeatures(cpuinfo = '/proc/cpuinfo'): Int8CpuFeatures {
  let text: string;
  try {
    text = readFileSync(cpuinfo, 'utf8');
  } catch {
    return { model: 'unknown CPU', present: null };
  }
  const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? []);
  return {
    model: /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? 'unknown CPU',
    present: INT8_CPU_FLAGS.filter((f) => flags.has(f)),
  };
}

/** One line: `AMD EPYC: avx2 yes, avx512f yes, avx512_vnni yes, avx_vnni no, amx_int8 no`. */
export function describeInt8CpuFeatures(f: Int8CpuFeatures = int8CpuFeatures()): string {
  if (!f.present) return `${f.model}: CPU flags unavailable (no /proc/cpuinfo)`;
  return `${f.model}: ${INT8_CPU_FLAGS.map((x) => `${x} ${f.present!.includes(x) ? 'yes' : 'no'}`).join(', ')}`;
}
