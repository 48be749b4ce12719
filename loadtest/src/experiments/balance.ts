/**
 * Experiment 3 — balance: two Embed replicas behind one client channel (round_robin over a
 * `curia-targets:` file the launcher maintains): per-replica request counts from each replica's
 * own metrics differ by < 20%; then a third replica is added mid-run and must receive traffic
 * within the configured max connection age (servers end connections at that age, the channel
 * re-resolves and finds the new address).
 *
 *     node loadtest/dist/experiments/balance.js [--quick]
 */
import { targetsFileUri } from '@curia/client';

import { OutputTail, replicaTargets, startCluster } from '../cluster.js';
import { runLoad } from '../generator.js';
import { sumSamples, scrape } from '../prometheus.js';
import { RawClient } from '../raw-client.js';
import { distribution, snapshot } from '../replicas.js';
import { runReport, timelinePanels, writeReport, type Check, type RunReport } from '../report.js';
import { embedScenario } from '../scenarios.js';
import { experimentArgs, nowIso, progress, SHARED_MACHINE_NOTE } from './common.js';

const args = experimentArgs('balance');
const startedAt = nowIso();
const maxAgeMs = 10_000;
const balanceMs = args.quick ? 10_000 : 30_000;
const addRunMs = args.quick ? 25_000 : 40_000;
const tail = new OutputTail();
/**
 * Like the platform's clients (the gateway retries stage calls): UNAVAILABLE is retried. The
 * servers' max-connection-age GOAWAY can refuse a stream that raced it ("Stream refused by
 * server"); grpc-js would retry those transparently, but the platform channel sets
 * grpc.enable_retries=0. Retries are counted in the report.
 */
const retry = { maxAttempts: 3, codes: ['UNAVAILABLE'] } as const;
const runs: RunReport[] = [];
const checks: Check[] = [];
const summary: Record<string, unknown> = {};

const cluster = await startCluster(
  {
    only: ['embed'],
    replicas: { embed: 2 },
    discovery: 'targets-file',
    env: { CURIA_MAX_CONNECTION_AGE_MS: String(maxAgeMs), CURIA_MAX_CONNECTION_AGE_GRACE_MS: '5000' },
  },
  tail,
);
let exitCodes = new Map<string, number | null>();
let timelineCharts: ReturnType<typeof timelinePanels> = [];
try {
  const file = cluster.targetsFile('embed');
  if (!file) throw new Error('targets file missing');
  const client = new RawClient(targetsFileUri(file));
  const scenario = embedScenario(client);
  await runLoad(scenario.call, {
    mode: { kind: 'closed', concurrency: 4 },
    durationMs: 3_000,
    maxRequests: 100,
    deadlineMs: 30_000,
  });

  progress(`balance: 2 replicas, closed loop c=8 for ${balanceMs / 1000} s`);
  const before = await snapshot(replicaTargets(cluster, 'embed'));
  const steady = await runLoad(scenario.call, {
    retry,
    mode: { kind: 'closed', concurrency: 8 },
    durationMs: balanceMs,
    maxRequests: 5_000,
    deadlineMs: 30_000,
  });
  const after = await snapshot(replicaTargets(cluster, 'embed'));
  const dist = distribution(before, after, 'Embed');
  runs.push(runReport('2 replicas, c=8', scenario, steady, { perReplica: dist }));
  const counts = dist.map((d) => d.handled);
  const spread = (Math.max(...counts) - Math.min(...counts)) / Math.max(...counts);
  summary['per-replica spread (max−min)/max'] = spread;
  checks.push({
    name: 'two replicas: per-replica Embed counts differ by < 20%',
    pass: dist.length === 2 && spread < 0.2,
    detail:
      dist.map((d) => `${d.replica} ${d.handled}`).join(', ') + ` → spread ${(100 * spread).toFixed(1)}%`,
  });

  progress(
    `add: closed loop c=8 for ${addRunMs / 1000} s, third replica added at ~5 s (max connection age ${maxAgeMs} ms)`,
  );
  const t0 = performance.now();
  const before2 = await snapshot(replicaTargets(cluster, 'embed'));
  const load = runLoad(scenario.call, {
    retry,
    mode: { kind: 'closed', concurrency: 8 },
    durationMs: addRunMs,
    maxRequests: 10_000,
    deadlineMs: 30_000,
  });
  await new Promise((r) => setTimeout(r, 5_000));
  const added = await cluster.addReplica('embed');
  const servingAt = performance.now() - t0;
  const url = `http://127.0.0.1:${added.metricsPort}/metrics`;
  let firstTrafficAt = Number.NaN;
  while (performance.now() - t0 < addRunMs && Number.isNaN(firstTrafficAt)) {
    const s = await scrape(url);
    if (s && sumSamples(s, 'grpc_server_started_total', { grpc_method: 'Embed' }) > 0)
      firstTrafficAt = performance.now() - t0;
    else await new Promise((r) => setTimeout(r, 250));
  }
  const grown = await load;
  const after2 = await snapshot(replicaTargets(cluster, 'embed'));
  const dist2 = distribution(before2, after2, 'Embed');
  runs.push(runReport('replica added mid-run, c=8', scenario, grown, { perReplica: dist2 }));
  const delay = firstTrafficAt - servingAt;
  summary['added replica SERVING at (s into the run)'] = servingAt / 1000;
  summary['added replica first Embed call after SERVING (s)'] = delay / 1000;
  summary['max connection age (s)'] = maxAgeMs / 1000;
  // grpc-js jitters the age by up to ±10%; the scrape interval adds 0.25 s.
  checks.push({
    name: 'a replica added mid-run receives traffic within the max connection age',
    pass: Number.isFinite(delay) && delay <= 1.1 * maxAgeMs + 500,
    detail: `${added.replica} SERVING at ${(servingAt / 1000).toFixed(1)} s, first Embed call ${(delay / 1000).toFixed(1)} s later (max connection age ${maxAgeMs / 1000} s)`,
  });
  checks.push({
    name: 'no failed call while the replica set changed (UNAVAILABLE retried, counted)',
    pass:
      Object.keys(grown.byCode).every((k) => k === 'OK') &&
      Object.keys(steady.byCode).every((k) => k === 'OK'),
    detail: `steady ${JSON.stringify(steady.byCode)} (${steady.retries} retried), with addition ${JSON.stringify(grown.byCode)} (${grown.retries} retried)`,
  });
  timelineCharts = [
    ...timelinePanels('2 replicas', steady, 'slice'),
    ...timelinePanels('replica added at ~5 s', grown, 'slice'),
  ];
  client.close();
} finally {
  exitCodes = await cluster.stop();
}
checks.push({
  name: 'every replica exits 0 on SIGTERM',
  pass: [...exitCodes.values()].every((c) => c === 0),
  detail: JSON.stringify(Object.fromEntries(exitCodes)),
});
const md = writeReport(args.out, {
  experiment: 'balance',
  title: 'Experiment 3 — balance over Embed replicas, and a replica added mid-run',
  startedAt,
  finishedAt: nowIso(),
  config: {
    replicas: 2,
    concurrency: 8,
    balanceMs,
    addRunMs,
    CURIA_MAX_CONNECTION_AGE_MS: maxAgeMs,
    CURIA_MAX_CONNECTION_AGE_GRACE_MS: 5_000,
    discovery: 'curia-targets:///<tmp>/embed.targets (LocalCluster discovery: targets-file)',
  },
  runs,
  checks,
  notes: [
    SHARED_MACHINE_NOTE,
    'Counts come from each replica\'s grpc_server_handled_total{grpc_method="Embed"} (deltas over the run), not from the client.',
    'The channel balances per call (round_robin over subchannels), so with 1-slice streams the split is close to even; the added replica is found at the next re-resolution, which the server forces by closing connections at CURIA_MAX_CONNECTION_AGE_MS.',
  ],
  charts: [{ file: 'balance.png', panels: timelineCharts }],
  summary,
});
process.stdout.write(md);
