import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';

import { COLORS, formatTick, renderChart } from './chart.js';
import { runLoad } from './generator.js';
import { distribution, type CounterSnapshot } from './replicas.js';
import { parsePrometheus, sumSamples } from './prometheus.js';
import { runReport, timelinePanels, writeReport } from './report.js';

const METRICS_A = `# HELP grpc_server_handled_total x
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_type="bidi_stream",grpc_service="curia.embed.v1.EmbedService",grpc_method="Embed",grpc_code="OK",curia_replica="embed-1"} 10
grpc_server_handled_total{grpc_type="bidi_stream",grpc_service="curia.embed.v1.EmbedService",grpc_method="Embed",grpc_code="RESOURCE_EXHAUSTED",curia_replica="embed-1"} 2
grpc_server_handled_total{grpc_type="unary",grpc_service="curia.embed.v1.EmbedService",grpc_method="GetInfo",grpc_code="OK"} 7
process_resident_memory_bytes 1.5e8
label_escape{a="x\\"y"} 1
`;

describe('Prometheus parsing and per-replica distribution', () => {
  it('parses samples with labels and escapes, and sums by label filter', () => {
    const s = parsePrometheus(METRICS_A);
    expect(s).toHaveLength(5);
    expect(sumSamples(s, 'grpc_server_handled_total', { grpc_method: 'Embed' })).toBe(12);
    expect(sumSamples(s, 'grpc_server_handled_total', { grpc_method: 'Embed', grpc_code: 'OK' })).toBe(10);
    expect(sumSamples(s, 'process_resident_memory_bytes')).toBe(1.5e8);
    expect(s.find((x) => x.name === 'label_escape')?.labels.a).toBe('x"y');
  });

  it('computes deltas and shares between snapshots, restarting counters from zero', () => {
    const at = (ok: number, shed: number): ReturnType<typeof parsePrometheus> =>
      parsePrometheus(
        `grpc_server_handled_total{grpc_method="Embed",grpc_code="OK"} ${ok}\ngrpc_server_handled_total{grpc_method="Embed",grpc_code="RESOURCE_EXHAUSTED"} ${shed}\n`,
      );
    const before: CounterSnapshot = new Map([
      ['embed-1', at(100, 0)],
      ['embed-2', at(50, 5)],
    ]);
    // embed-2 restarted: its counters went back to zero and then counted 30.
    const after: CounterSnapshot = new Map([
      ['embed-1', at(130, 0)],
      ['embed-2', at(30, 0)],
      ['embed-3', at(40, 0)],
    ]);
    const d = distribution(before, after, 'Embed');
    expect(d.map((r) => [r.replica, r.handled, r.ok])).toEqual([
      ['embed-1', 30, 30],
      ['embed-2', 30, 30],
      ['embed-3', 40, 40],
    ]);
    expect(d.reduce((s, r) => s + r.share, 0)).toBeCloseTo(1, 9);
  });
});

describe('reports and charts', () => {
  it('draws series in their colours on a white page sized per panel', () => {
    const png = PNG.sync.read(
      renderChart([
        {
          title: 'a',
          xLabel: 'x',
          series: [
            {
              label: 'up',
              color: COLORS.red,
              points: [
                [0, 0],
                [10, 10],
              ],
            },
          ],
        },
        {
          title: 'b',
          xLabel: 'x',
          logY: true,
          series: [
            {
              label: 'flat',
              color: COLORS.blue,
              points: [
                [0, 5],
                [10, 5],
              ],
            },
          ],
        },
      ]),
    );
    expect([png.width, png.height]).toEqual([900, 600]);
    let red = 0;
    let blue = 0;
    for (let i = 0; i < png.data.length; i += 4) {
      const [r, g, b] = [png.data[i], png.data[i + 1], png.data[i + 2]];
      if (r === COLORS.red[0] && g === COLORS.red[1] && b === COLORS.red[2]) red++;
      if (r === COLORS.blue[0] && g === COLORS.blue[1] && b === COLORS.blue[2]) blue++;
    }
    // A diagonal across the first panel and a horizontal line across the second, 2 px wide.
    expect(red).toBeGreaterThan(800);
    expect(blue).toBeGreaterThan(1_200);
    expect([formatTick(1234), formatTick(0.05), formatTick(20)]).toEqual(['1.2K', '0.05', '20']);
  });

  it('writes JSON, Markdown and PNG for a run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curia-loadtest-report-'));
    try {
      const result = await runLoad(
        (ctx) =>
          Promise.resolve(
            ctx.seq % 5 === 0 ? { code: 'RESOURCE_EXHAUSTED', retryAfterMs: 10 } : { code: 'OK' },
          ),
        {
          mode: { kind: 'closed', concurrency: 2 },
          durationMs: 10_000,
          maxRequests: 50,
          deadlineMs: 1_000,
          keepRecords: true,
        },
      );
      const run = runReport('r1', { name: 'fake', unit: 'call' }, result);
      expect('records' in run.result).toBe(false);
      const md = writeReport(dir, {
        experiment: 'unit',
        title: 'Unit report',
        startedAt: 'a',
        finishedAt: 'b',
        config: { k: 1 },
        runs: [run],
        checks: [{ name: 'p', pass: true, detail: 'd' }],
        notes: ['n'],
        charts: [{ file: 'timeline.png', panels: timelinePanels('r1', run.result, 'call') }],
        summary: { ratio: 0.5 },
      });
      expect(md).toContain('| r1 | fake | closed c=2 | 50 | 40 | ');
      expect(md).toContain('RESOURCE_EXHAUSTED 10');
      const json = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as {
        runs: { result: { byCode: object } }[];
      };
      expect(json.runs[0]?.result.byCode).toEqual({ OK: 40, RESOURCE_EXHAUSTED: 10 });
      expect(PNG.sync.read(readFileSync(join(dir, 'timeline.png'))).height).toBe(600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
