import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  GatewayServiceBulkClientDefinition,
  collectAnalysis,
  common,
  createCuriaChannel,
  createCuriaClient,
  studyFiles,
  studyUploadRequests,
  wireFloats,
  type AnalysisResult,
  type Channel,
  type gateway,
} from '@curia/client';
import { generatePhantom, phantomToNifti } from '@curia/phantom';
import { readSafetensors, toFloat32 } from '@curia/tensors';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LocalCluster } from '../cluster/launcher.js';
import { DEMO_HEAD, ensureDemoHead, selfCheckStart } from '../commands/demo-head.js';
import { runCuria, type CuriaRun } from './curia-bin.js';

const CLS: common.FeatureRequest = {
  kind: { $case: 'cls', value: { prenorm: false } },
  dtype: common.DType.F32,
};

/** `curia analyze` as a user runs it: the committed bin, its own process. */
const curiaAnalyze = (args: string[]): Promise<CuriaRun> => runCuria(['analyze', ...args]);

/**
 * `curia analyze` against a spawned cluster whose heads service marks the demo head default (as
 * `curia up` does): no flags runs the default head, or says which heads exist; `--out` saves the
 * values the gateway returned.
 */
describe('curia analyze through the spawned cluster', () => {
  let work = '';
  let cluster: LocalCluster;
  let gwChannel: Channel;
  let hdChannel: Channel;
  let study = '';
  let modelRef = '';
  const phantom = generatePhantom({ size: [96, 96, 40], seed: 7 });
  const target = (): string[] => ['--target', cluster.target('gateway')];
  const analyse = async (extra: Partial<gateway.AnalyzeStudyStart>): Promise<AnalysisResult> => {
    const client = createCuriaClient(GatewayServiceBulkClientDefinition, gwChannel);
    const { files } = await studyFiles(study);
    return collectAnalysis(client.analyzeStudy(studyUploadRequests(selfCheckStart(extra), files)));
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-analyze-cli-'));
    study = join(work, 'phantom.nii.gz');
    await writeFile(study, phantomToNifti(phantom, { gzip: true }).image);
    cluster = await LocalCluster.start({
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'heads', 'gateway'],
      env: { CURIA_HEADS_DIR: join(work, 'heads'), CURIA_SHUTDOWN_GRACE_MS: '2000' },
      serviceEnv: { heads: { CURIA_HEADS_DEFAULT: DEMO_HEAD } },
    });
    gwChannel = createCuriaChannel(cluster.target('gateway'));
    hdChannel = createCuriaChannel(cluster.target('heads'));
    const { info } = await createCuriaClient(GatewayServiceBulkClientDefinition, gwChannel).getInfo({});
    const model = info!.models.find((m) => m.isDefault)!;
    modelRef = `${model.name}@${model.version}`;
  }, 240_000);

  afterAll(async () => {
    gwChannel?.close();
    hdChannel?.close();
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('with no heads named and no default, says which heads exist and how to pick one (exit 2)', async () => {
    const none = await curiaAnalyze([study, ...target()]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no heads named, and the deployment serves none');
    expect(none.stderr).toContain('--embeddings cls');

    const other = await ensureDemoHead(
      hdChannel,
      modelRef,
      phantom,
      () => analyse({ embeddingOutputs: [CLS] }),
      'e2e-other',
    );
    const listed = await curiaAnalyze([study, ...target()]);
    expect(listed.code).toBe(2);
    expect(listed.stderr).toContain('pick one with --heads name[@version]');
    expect(listed.stderr).toMatch(
      new RegExp(
        `^  ${other.ref}  classification \\(lower-abdomen, mid-abdomen, upper-abdomen\\)  \\[demo\\]`,
        'm',
      ),
    );
    expect(listed.stdout).toBe('');
  });

  it('with no heads named, runs the heads the deployment marks default', async () => {
    const demo = await ensureDemoHead(hdChannel, modelRef, phantom, () =>
      analyse({ embeddingOutputs: [CLS] }),
    );
    const r = await curiaAnalyze([study, ...target(), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as {
      defaultHeads: string[];
      heads: { head: string; probabilities: Record<string, number> }[];
    };
    expect(json.defaultHeads).toEqual([demo.ref]);
    expect(json.heads.map((h) => h.head)).toEqual([demo.ref]);
    // The same answer as naming the head.
    const named = await analyse({ heads: [demo.ref] });
    const probabilities = wireFloats(named.heads[0]!.prediction!.probabilities);
    expect(Object.values(json.heads[0]!.probabilities)).toEqual(
      [...probabilities].map((p) => Number(p.toFixed(4))),
    );

    const text = await curiaAnalyze([study, ...target()]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`no heads named: ran the deployment's default heads (${demo.ref})`);
    expect(text.stdout).toMatch(new RegExp(`^head ${demo.ref}: `, 'm'));
  });

  it('--embeddings cls --out saves the values the gateway returned, slice-major with the slice mapping', async () => {
    const out = join(work, 'cls.safetensors');
    const r = await curiaAnalyze([study, ...target(), '--embeddings', 'cls', '--json', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as {
      embeddingsFile: string;
      embeddingOutputs: { name: string; shape: number[]; dtype: string }[];
      modelSha256: string;
    };
    const direct = await analyse({ embeddingOutputs: [CLS] });
    const rows = [...direct.embeddings].sort((a, b) => a.mapping!.canonicalIndex - b.mapping!.canonicalIndex);
    const hidden = rows[0]!.features[0]!.tensor!.shape[0]!;
    expect(json.embeddingsFile).toBe(out);
    expect(json.embeddingOutputs).toEqual([{ name: 'cls', shape: [rows.length, hidden], dtype: 'F32' }]);

    const file = await readSafetensors(out);
    expect([...file.tensors.keys()].sort()).toEqual(['canonical_index', 'cls', 'input_slice_index']);
    expect(file.metadata).toMatchObject({
      model: modelRef,
      model_sha256: json.modelSha256,
      demo_weights: 'true',
      outputs: 'cls',
    });
    const index = file.tensors.get('canonical_index')!;
    expect(index.dtype).toBe('I32');
    expect([...new Int32Array(new Uint8Array(index.data).buffer)]).toEqual(
      rows.map((e) => e.mapping!.canonicalIndex),
    );
    const inputIndex = file.tensors.get('input_slice_index')!;
    expect([...new Int32Array(new Uint8Array(inputIndex.data).buffer)]).toEqual(
      rows.map((e) => e.mapping!.inputSliceIndex),
    );
    const cls = file.tensors.get('cls')!;
    expect(cls.shape).toEqual([rows.length, hidden]);
    const values = toFloat32(cls);
    rows.forEach((e, k) => {
      expect(values.subarray(k * hidden, (k + 1) * hidden)).toEqual(wireFloats(e.features[0]!.tensor));
    });
  });

  it('--out without --embeddings is refused before any upload', async () => {
    const r = await curiaAnalyze([study, ...target(), '--out', join(work, 'x.safetensors')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'curia analyze: --out saves the --embeddings outputs: name at least one (e.g. --embeddings cls)\n',
    );
  });
});
