import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import {
  GatewayServiceBulkClientDefinition,
  collectAnalysis,
  common,
  createCuriaChannel,
  createCuriaClient,
  SERVICE_DEFINITIONS,
  studyFiles,
  studyUploadRequests,
  type AnalysisResult,
  type CuriaServiceName,
} from '@curia/client';
import { defaultCacheRoot } from '@curia/model';
import { generatePhantom, phantomToNifti } from '@curia/phantom';

import type { LocalCluster } from '../cluster/launcher.js';
import { analysisText } from './analyze.js';
import { ensureDemoHead, selfCheckStart } from './demo-head.js';

const say = (line: string): boolean => process.stdout.write(`self-check: ${line}\n`);
const ms = (t0: number): string => `${(performance.now() - t0).toFixed(0)} ms`;

/** Asks every replica for GetInfo and prints what it serves (models, execution provider, demo flag). */
async function replicaInfo(cluster: LocalCluster): Promise<void> {
  const security = new Set<string>();
  for (const e of cluster.endpoints()) {
    const channel = createCuriaChannel(`127.0.0.1:${e.grpcPort}`);
    try {
      const client = createCuriaClient(SERVICE_DEFINITIONS[e.grpcService as CuriaServiceName], channel);
      const t0 = performance.now();
      const { info } = await client.getInfo({}, { deadline: 10_000 });
      const models = (info?.models ?? []).map(
        (m) => `${m.name}@${m.version}${m.demoWeights ? ' (DEMO WEIGHTS)' : ''}`,
      );
      const ep = info?.executionProvider ? ` ep=${info.executionProvider}` : '';
      say(
        `${e.replica.padEnd(12)} GetInfo ${ms(t0)}  v${info?.version ?? '?'}${ep}${models.length ? `  models: ${models.join(', ')}` : ''}`,
      );
      if (info?.security?.summary) security.add(info.security.summary);
    } finally {
      channel.close();
    }
  }
  for (const summary of security) say(`security: ${summary} (SECURITY.md)`);
}

/**
 * The main job's check: GetInfo from every replica; then, when the gateway runs, a synthetic
 * phantom is generated, the demo head is loaded (or fitted on the phantom's CLS embeddings), and
 * the phantom is analysed through the gateway, printing what each stage did and how long it took.
 */
export async function selfCheck(cluster: LocalCluster): Promise<void> {
  await replicaInfo(cluster);
  const endpoint = (service: string) => cluster.endpoints().find((e) => e.service === service);
  const gw = endpoint('gateway');
  const hd = endpoint('heads');
  if (!gw || !hd || !endpoint('embed') || !endpoint('preprocess')) {
    say('gateway, preprocess, embed and heads are needed for the phantom analysis; skipped');
    return;
  }
  let t0 = performance.now();
  const phantom = generatePhantom({ size: [192, 192, 40], seed: 7 });
  const dir = join(defaultCacheRoot(), 'self-check');
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'phantom.nii.gz');
  await writeFile(path, phantomToNifti(phantom, { gzip: true }).image);
  say(`phantom ${phantom.dims.join('×')} (synthetic abdominal CT, seed 7) written to ${path} in ${ms(t0)}`);

  const gwChannel = createCuriaChannel(`127.0.0.1:${gw.grpcPort}`);
  const hdChannel = createCuriaChannel(`127.0.0.1:${hd.grpcPort}`);
  try {
    const client = createCuriaClient(GatewayServiceBulkClientDefinition, gwChannel);
    const { files } = await studyFiles(path);
    const analyse = (extra: Parameters<typeof selfCheckStart>[0]): Promise<AnalysisResult> =>
      collectAnalysis(
        client.analyzeStudy(studyUploadRequests(selfCheckStart(extra), files), { deadline: 600_000 }),
      );
    const info = (await client.getInfo({}, { deadline: 10_000 })).info;
    const model = info?.models.find((m) => m.isDefault) ?? info?.models[0];
    if (!model) throw new Error('the gateway reports no model');
    const modelRef = `${model.name}@${model.version}`;

    t0 = performance.now();
    const demo = await ensureDemoHead(hdChannel, modelRef, phantom, () =>
      analyse({
        embeddingOutputs: [{ kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 }],
      }),
    );
    say(
      demo.fitted
        ? `demo head ${demo.ref} fitted on ${demo.samples} phantom slices (CLS, logistic, 3-fold CV balanced accuracy ${(demo.cvBalancedAccuracy ?? NaN).toFixed(2)}) in ${ms(t0)}`
        : `demo head ${demo.ref} loaded from the head store`,
    );

    t0 = performance.now();
    const r = await analyse({ heads: [demo.ref] });
    say(`AnalyzeStudy of the phantom through the gateway in ${ms(t0)}:`);
    for (const line of analysisText(r)) say(`  ${line}`);
    say(`try it: npx --no-install curia analyze ${path}   (no --heads: the deployment's default heads)`);
  } finally {
    gwChannel.close();
    hdChannel.close();
  }
}
