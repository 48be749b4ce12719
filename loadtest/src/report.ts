import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

import { COLORS, renderChart, type Panel } from './chart.js';
import type { LoadMode, LoadResult } from './generator.js';
import type { LatencySummary } from './histogram.js';
import type { ReplicaShare, ResourcePoint } from './replicas.js';

/** One load run inside an experiment. */
export interface RunReport {
  readonly label: string;
  readonly scenario: string;
  /** What a unit is (`slice`, `study`, `call`). */
  readonly unit: string;
  /** The run's measurements (per-call records left out). */
  readonly result: Omit<LoadResult, 'records'>;
  /** Calls per replica from the services' own metrics. */
  readonly perReplica?: readonly ReplicaShare[];
  /** RSS / heap samples per replica. */
  readonly resources?: Readonly<Record<string, readonly ResourcePoint[]>>;
}

/** A property an experiment asserts. */
export interface Check {
  readonly name: string;
  readonly pass: boolean;
  readonly detail: string;
}

/** One chart of the report. */
export interface ChartSpec {
  /** File name under the experiment's folder (`.png`). */
  readonly file: string;
  readonly panels: readonly Panel[];
}

/** Everything an experiment writes. */
export interface ExperimentReport {
  readonly experiment: string;
  readonly title: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly runs: readonly RunReport[];
  readonly checks: readonly Check[];
  readonly notes: readonly string[];
  readonly charts: readonly ChartSpec[];
  /** Headline figures (e.g. the knee, the ghz ratio). */
  readonly summary: Readonly<Record<string, unknown>>;
}

/** Where experiment reports live: `loadtest/results/<experiment>/`. */
export function resultsDir(experiment: string, root: string): string {
  return join(root, 'loadtest', 'results', experiment);
}

/** Machine facts recorded with every report (the machine is shared: load average matters). */
export function machineInfo(): Record<string, unknown> {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadavg1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** Strips per-call records (they stay in memory for analysis, not in the report). */
export function runReport(
  label: string,
  scenario: { readonly name: string; readonly unit: string },
  result: LoadResult,
  extra: {
    perReplica?: readonly ReplicaShare[];
    resources?: Readonly<Record<string, readonly ResourcePoint[]>>;
  } = {},
): RunReport {
  const { records: _records, ...rest } = result;
  return { label, scenario: scenario.name, unit: scenario.unit, result: rest, ...extra };
}

/** Latency and throughput over time of one run, as two chart panels. */
export function timelinePanels(title: string, result: Omit<LoadResult, 'records'>, unit: string): Panel[] {
  const t = result.timeline;
  return [
    {
      title: `${title}: latency of OK calls (ms)`,
      xLabel: 'time (s)',
      logY: true,
      series: [
        { label: 'p50', color: COLORS.blue, points: t.map((b) => [b.t, b.p50] as const) },
        { label: 'p99', color: COLORS.red, points: t.map((b) => [b.t, b.p99] as const) },
      ],
    },
    {
      title: `${title}: throughput (per s)`,
      xLabel: 'time (s)',
      series: [
        { label: `${unit}s ok`, color: COLORS.green, points: t.map((b) => [b.t, b.unitsPerSec] as const) },
        { label: 'errors', color: COLORS.red, points: t.map((b) => [b.t, b.errorsPerSec] as const) },
      ],
    },
  ];
}

/** RSS per replica over time (MiB), one panel. */
export function memoryPanel(
  title: string,
  resources: Readonly<Record<string, readonly ResourcePoint[]>>,
): Panel {
  const palette = [COLORS.blue, COLORS.orange, COLORS.green, COLORS.purple, COLORS.grey];
  return {
    title: `${title}: RSS (MiB)`,
    xLabel: 'time (s)',
    series: Object.entries(resources).map(([replica, pts], i) => ({
      label: replica,
      color: palette[i % palette.length]!,
      points: pts.map((p) => [p.t, p.rssBytes / 2 ** 20] as const),
    })),
  };
}

const f = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : '–');

function modeText(m: LoadMode): string {
  return m.kind === 'open' ? `open ${f(m.ratePerSec)}/s` : `closed c=${m.concurrency}`;
}

function latencyCells(l: LatencySummary): string {
  return `${f(l.p50)} | ${f(l.p90)} | ${f(l.p99)} | ${f(l.max)}`;
}

function codesText(byCode: Readonly<Record<string, number>>): string {
  const entries = Object.entries(byCode).filter(([c]) => c !== 'OK');
  return entries.length ? entries.map(([c, n]) => `${c} ${n}`).join(', ') : 'none';
}

/** The Markdown rendering of a report. */
export function renderMarkdown(report: ExperimentReport, machine: Record<string, unknown>): string {
  const lines: string[] = [];
  lines.push(`# ${report.title}`, '');
  lines.push(
    `Experiment \`${report.experiment}\`, ${report.startedAt} → ${report.finishedAt}. ` +
      `Machine: ${String(machine.cpus)} cores (${String(machine.cpuModel)}), ${String(machine.memGiB)} GiB, Node ${String(machine.node)}, ` +
      `1-min load average at the end ${String(machine.loadavg1m)}. All traffic on loopback; every run bounded in time and calls.`,
    '',
  );
  if (report.notes.length) {
    lines.push('## Notes', '');
    for (const n of report.notes) lines.push(`- ${n}`);
    lines.push('');
  }
  if (Object.keys(report.summary).length) {
    lines.push('## Summary', '', '| figure | value |', '| --- | --- |');
    for (const [k, v] of Object.entries(report.summary))
      lines.push(`| ${k} | ${typeof v === 'number' ? f(v, 2) : JSON.stringify(v)} |`);
    lines.push('');
  }
  if (report.checks.length) {
    lines.push('## Checks', '', '| property | result | detail |', '| --- | --- | --- |');
    for (const c of report.checks)
      lines.push(`| ${c.name} | ${c.pass ? 'PASS' : '**FAIL**'} | ${c.detail} |`);
    lines.push('');
  }
  lines.push(
    '## Runs',
    '',
    "Latency in ms (OK calls, measured from the scheduled start in open loop); 'units/s under load' counts completions while load was offered (after warm-up); 'wall' divides all completions by the time to the last one (it includes the drain of queued calls).",
    '',
    '| run | scenario | load | started | OK | units/s under load | units/s wall | p50 | p90 | p99 | max | other statuses | skipped | hung |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const r of report.runs) {
    const res = r.result;
    lines.push(
      `| ${r.label} | ${r.scenario} | ${modeText(res.mode)} | ${res.started} | ${res.byCode.OK ?? 0} | ${f(res.steadyUnitsPerSec, 2)} ${r.unit}/s | ${f(res.unitsPerSec, 2)} | ${latencyCells(res.latency)} | ${codesText(res.byCode)} | ${res.skipped} | ${res.hung} |`,
    );
  }
  lines.push('');
  const withErrors = report.runs.filter((r) => Object.keys(r.result.latencyByCode).some((c) => c !== 'OK'));
  if (withErrors.length) {
    lines.push(
      '### Latency by status (ms)',
      '',
      '| run | status | count | p50 | p90 | p99 | max |',
      '| --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const r of withErrors) {
      for (const [code, l] of Object.entries(r.result.latencyByCode)) {
        lines.push(`| ${r.label} | ${code} | ${l.count} | ${latencyCells(l)} |`);
      }
    }
    lines.push('');
  }
  const balanced = report.runs.filter((r) => r.perReplica?.length);
  if (balanced.length) {
    lines.push(
      "### Per replica (from each replica's grpc_server_handled_total)",
      '',
      '| run | replica | handled | OK | shed | share |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const r of balanced) {
      for (const p of r.perReplica ?? []) {
        lines.push(
          `| ${r.label} | ${p.replica} | ${p.handled} | ${p.ok} | ${p.shed} | ${f(100 * p.share)}% |`,
        );
      }
    }
    lines.push('');
  }
  const withMem = report.runs.filter((r) => r.resources && Object.keys(r.resources).length);
  if (withMem.length) {
    lines.push(
      '### Memory (from process_resident_memory_bytes)',
      '',
      '| run | replica | RSS first | RSS max | RSS last | heap max |',
      '| --- | --- | --- | --- | --- | --- |',
    );
    for (const r of withMem) {
      for (const [replica, pts] of Object.entries(r.resources ?? {})) {
        if (!pts.length) continue;
        const mib = (b: number): string => `${f(b / 2 ** 20, 0)} MiB`;
        lines.push(
          `| ${r.label} | ${replica} | ${mib(pts[0]!.rssBytes)} | ${mib(Math.max(...pts.map((p) => p.rssBytes)))} | ${mib(pts.at(-1)!.rssBytes)} | ${mib(Math.max(...pts.map((p) => p.heapUsedBytes)))} |`,
        );
      }
    }
    lines.push('');
  }
  if (report.charts.length) {
    lines.push('## Charts', '');
    for (const c of report.charts) lines.push(`![${c.file}](${c.file})`, '');
  }
  lines.push('## Configuration', '', '```json', JSON.stringify(report.config, null, 2), '```', '');
  return lines.join('\n');
}

/** Writes `report.json`, `report.md` and the charts under `dir`; returns the Markdown. */
export function writeReport(dir: string, report: ExperimentReport): string {
  mkdirSync(dir, { recursive: true });
  const machine = machineInfo();
  const json = { ...report, machine, charts: report.charts.map((c) => c.file) };
  writeFileSync(
    join(dir, 'report.json'),
    `${JSON.stringify(json, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`,
  );
  for (const c of report.charts) writeFileSync(join(dir, c.file), renderChart(c.panels));
  const md = renderMarkdown(report, machine);
  writeFileSync(join(dir, 'report.md'), md);
  return md;
}
