import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { createCuriaChannel, createCuriaClient } from '@curia/client';
import { SERVICE_DEFINITIONS, type CuriaServiceName } from '@curia/proto';
import { describe, expect, it } from 'vitest';

import { repoRoot } from './launcher.js';

interface Row {
  replica: string;
  grpc: string;
  metrics: string;
}

const SERVICE_OF: Record<string, CuriaServiceName> = {
  preprocess: 'curia.preprocess.v1.PreprocessService',
  embed: 'curia.embed.v1.EmbedService',
  heads: 'curia.heads.v1.HeadsService',
  segment: 'curia.segment.v1.SegmentService',
  register: 'curia.register.v1.RegisterService',
  gateway: 'curia.gateway.v1.GatewayService',
};

describe('curia up (the local cluster, as npm start runs it)', () => {
  it('boots every service as its own process, serves GetInfo and /metrics, and drains cleanly on SIGINT', async () => {
    const child = spawn(
      process.execPath,
      [join(repoRoot(), 'libs/cli/dist/main.js'), 'up', '--dynamic-ports', '--replicas', 'embed=2'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (out.includes('SERVING after')) {
          clearInterval(timer);
          resolve();
        }
      }, 100);
      void exited.then((code) => {
        clearInterval(timer);
        reject(new Error(`launcher exited early (${code}): ${err}`));
      });
    });
    const rows: Row[] = out
      .split('\n')
      .filter((l) => /^\S+\s+127\.0\.0\.1:\d+\s+http/.test(l))
      .map((l) => {
        const [replica = '', grpc = '', metrics = ''] = l.split(/\s+/);
        return { replica, grpc, metrics };
      });
    expect(rows.map((r) => r.replica).sort()).toEqual(
      ['embed-1', 'embed-2', 'gateway', 'heads', 'preprocess', 'register', 'segment'].sort(),
    );
    for (const row of rows) {
      const service = SERVICE_OF[row.replica.replace(/-\d+$/, '')]!;
      const channel = createCuriaChannel(row.grpc);
      const client = createCuriaClient(SERVICE_DEFINITIONS[service], channel);
      const { info } = await client.getInfo({});
      expect(info?.service).toBe(service);
      // Each service's own default (4-64 MiB, e2e/message-limits.test.ts checks the exact values).
      const receive = Number(info?.limits.max_receive_message_bytes);
      expect(receive).toBeGreaterThanOrEqual(4 * 1024 * 1024);
      expect(receive).toBeLessThanOrEqual(64 * 1024 * 1024);
      channel.close();
      const metrics = await (await fetch(row.metrics)).text();
      expect(metrics).toMatch(
        new RegExp(`grpc_server_handled_total\\{[^}]*grpc_method="GetInfo"[^}]*grpc_code="OK"`),
      );
      expect(metrics).toContain(`curia_replica="${row.replica}"`);
    }
    // Every Curia metric the chart's dashboards, alerts and adapter rules query is exported by some process.
    const exported = new Set<string>();
    for (const row of rows) {
      for (const m of (await (await fetch(row.metrics)).text()).matchAll(/^# TYPE (\S+) /gm))
        exported.add(m[1]!);
    }
    const missing = chartMetricNames().filter(
      (name) => !exported.has(name) && !exported.has(name.replace(/_(bucket|sum|count)$/, '')),
    );
    expect(missing).toEqual([]);
    const grpcurl = findGrpcurl();
    if (grpcurl) {
      // The README's grpcurl calls work through server reflection alone, with no .proto files.
      const embed = rows.find((r) => r.replica === 'embed-1')!.grpc;
      expect(execFileSync(grpcurl, ['-plaintext', embed, 'list'], { encoding: 'utf8' })).toContain(
        'curia.embed.v1.EmbedService',
      );
      const info = JSON.parse(
        execFileSync(grpcurl, ['-plaintext', '-d', '{}', embed, 'curia.embed.v1.EmbedService/GetInfo'], {
          encoding: 'utf8',
        }),
      ) as { info: { service: string } };
      expect(info.info.service).toBe('curia.embed.v1.EmbedService');
    }
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(err).toContain('all services stopped cleanly');
  });
});

describe('service process configuration', () => {
  it('exits 2 with a message naming each invalid variable', async () => {
    const child = spawn(process.execPath, [join(repoRoot(), 'services/segment/dist/main.js')], {
      env: { ...process.env, CURIA_GRPC_PORT: '99999', CURIA_LOG_LEVEL: 'chatty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(err).toMatch(/CURIA_GRPC_PORT: .*\(got "99999"\)/);
    expect(err).toMatch(/CURIA_LOG_LEVEL: .*\(got "chatty"\)/);
  });
});

function findGrpcurl(): string | null {
  const candidates = [process.env.GRPCURL, join(homedir(), 'go/bin/grpcurl'), '/usr/local/bin/grpcurl'];
  const found = candidates.find((c): c is string => Boolean(c && existsSync(c)));
  if (found) return found;
  if (process.env.CI === 'true') throw new Error('grpcurl is required under CI=true (.ci/run installs it)');
  console.warn(
    'SKIP grpcurl checks: grpcurl not installed (go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3)',
  );
  return null;
}

/** Metric names queried by helm/curia/files (dashboards, alert rules, adapter rules) that Curia must export. */
function chartMetricNames(): string[] {
  const dir = join(repoRoot(), 'helm/curia/files');
  const files = [
    join(dir, 'alerts.yaml'),
    join(dir, 'prometheus-adapter-rules.yaml'),
    ...readdirSync(join(dir, 'dashboards')).map((f) => join(dir, 'dashboards', f)),
  ];
  const names = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(f, 'utf8').matchAll(
      /(?<![:\w])((?:curia|grpc_server|nodejs|process)_[a-z0-9_]+)(?![:\w])/g,
    )) {
      names.add(m[1]!);
    }
  }
  for (const label of ['curia_service', 'curia_replica']) names.delete(label);
  expect(names.size).toBeGreaterThan(10);
  return [...names].sort();
}
