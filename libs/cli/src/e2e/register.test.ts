import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as nifti from 'nifti-reader-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  collectRegistration,
  common,
  createCuriaChannel,
  createCuriaClient,
  Metadata,
  register,
  registerUploadRequests,
  Status,
  type Channel,
  type RegisterInputFiles,
  type StudyFile,
} from '@curia/client';
import {
  applyPoint,
  IDENTITY,
  resampleLabels,
  resampleThroughField,
  resampleToGrid,
  volumeField,
  volumeLabels,
  voxelCount,
  writeImageNifti,
  type Grid,
  type GridField,
  type LabelField,
  type Mat4,
} from '@curia/register';
import { sharedPathOrSkip } from '@curia/tensors';
import { openVolume } from '@curia/volume';

import { LocalCluster } from '../cluster/launcher.js';
import { clusterMetric } from './cluster-metrics.js';
import { otlpEnv, servicesInTrace, startCollector } from './otlp-collector.js';
import { rejectsWith } from './rejects-with.js';

/**
 * Registration end to end through spawned Preprocess, Embed and Register processes: a pair made
 * from the shared CT by a known rigid motion is registered with MIND-SSC and with Curia features;
 * the displacement NIfTI, read back with an independent reader (nifti-reader-js, not the service's
 * writer or @curia/volume), warps the moving labels exactly as the service did and recovers the
 * known motion; bad requests get precise statuses.
 */
const ctPath = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
const segPath = sharedPathOrSkip('data/totalsegmentator/example_seg.nii.gz');

const LIVER = 5;
const deg = Math.PI / 180;

/** A rotation about z by `a` and a translation, about the point `c` (LPS mm). */
function rigidAbout(c: readonly number[], a: number, t: readonly number[]): number[] {
  const [co, si] = [Math.cos(a), Math.sin(a)];
  const r = [co, -si, 0, si, co, 0, 0, 0, 1];
  const m = IDENTITY.slice();
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) m[4 * i + j] = r[3 * i + j]!;
    m[4 * i + 3] = c[i]! + t[i]! - (r[3 * i]! * c[0]! + r[3 * i + 1]! * c[1]! + r[3 * i + 2]! * c[2]!);
  }
  return m;
}

/** A vector NIfTI read with nifti-reader-js: its header checks and the field (LPS mm) on its grid. */
function readVectorNifti(bytes: Uint8Array): GridField {
  let buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  if (nifti.isCompressed(buf)) buf = nifti.decompress(buf) as ArrayBuffer;
  const h = nifti.readHeader(buf) as nifti.NIFTI1;
  expect(h.intent_code).toBe(1007);
  expect(h.dims.slice(0, 6)).toEqual([5, h.dims[1], h.dims[2], h.dims[3], 1, 3]);
  expect(h.datatypeCode).toBe(16);
  expect(h.sform_code).toBeGreaterThan(0);
  const [X, Y, Z] = [h.dims[1]!, h.dims[2]!, h.dims[3]!];
  // NIfTI's sform is RAS; the grid's affine is LPS (negate the first two rows).
  const a = h.affine.flat();
  const lps = a.map((v, i) => (i < 8 ? -v : v));
  const grid: Grid = { dims: [X, Y, Z], affine: lps };
  const raw = new Float32Array(nifti.readImage(h, buf));
  expect(raw.length).toBe(3 * X * Y * Z);
  return { grid, channels: 3, data: Float32Array.from(raw) };
}

describe.skipIf(!ctPath || !segPath)('RegisterService end to end through the spawned cluster', () => {
  /** Writes `data` into the work directory as an upload file. */
  const file = async (name: string, data: Uint8Array): Promise<StudyFile> => {
    const path = join(work, name);
    await writeFile(path, data);
    return { name, path, bytes: data.length };
  };
  let cluster: LocalCluster;
  let channel: Channel;
  let client: ReturnType<typeof createCuriaClient<typeof register.RegisterServiceDefinition>>;
  let work: string;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let ct: GridField;
  let labels: LabelField;
  let truth: Mat4;
  let fixedFile: StudyFile;
  let fixedLabelsFile: StudyFile;
  let movingFile: StudyFile;
  let movingLabelsFile: StudyFile;

  const pair = (extra: RegisterInputFiles[] = []): RegisterInputFiles[] => [
    {
      input: {
        inputId: 'fixed',
        role: register.InputRole.FIXED,
        modality: register.Modality.CT,
        header: { studyId: 'reg-e2e' },
      },
      files: [fixedFile],
    },
    {
      input: { inputId: 'moving', role: register.InputRole.MOVING, modality: register.Modality.CT },
      files: [movingFile],
    },
    ...extra,
  ];
  const withLabels = (): RegisterInputFiles[] =>
    pair([
      {
        input: { inputId: 'organs', role: register.InputRole.MOVING_LABEL_MAP, label: 'organs' },
        files: [movingLabelsFile],
      },
      {
        input: { inputId: 'organs-fixed', role: register.InputRole.FIXED_LABEL_MAP, label: 'organs' },
        files: [fixedLabelsFile],
      },
    ]);
  const call = (
    options: Parameters<typeof register.RegisterOptions.fromPartial>[0],
    inputs: RegisterInputFiles[],
    opts: { deadline?: number; metadata?: Metadata; signal?: AbortSignal } = {},
  ) =>
    collectRegistration(
      client.register(registerUploadRequests(options, inputs), {
        deadline: opts.deadline ?? 120_000,
        ...(opts.metadata ? { metadata: opts.metadata } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      }),
    );

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-reg-e2e-'));
    collector = await startCollector();
    cluster = await LocalCluster.start({
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'register'],
      env: { CURIA_SHUTDOWN_GRACE_MS: '2000', ...otlpEnv(collector.url) },
      serviceEnv: {
        // A 1 GiB memory budget: the 3 mm registrations fit (~0.1 GiB), a 1.5 mm one (~1.4 GiB) does not.
        register: { CURIA_REGISTER_ALLOWED_ROOTS: work, CURIA_MEMORY_BUDGET_BYTES: String(2 ** 30) },
      },
    });
    channel = createCuriaChannel(
      `127.0.0.1:${cluster.endpoints().find((e) => e.service === 'register')!.grpcPort}`,
    );
    client = createCuriaClient(register.RegisterServiceDefinition, channel);

    // The pair: moving = the shared CT; fixed(x) = moving(T·x) for a known rigid T (5° about z, 6 mm).
    ct = await volumeField(await openVolume({ kind: 'path', path: ctPath! }));
    labels = await volumeLabels(await openVolume({ kind: 'path', path: segPath! }));
    const [nx, ny, nz] = ct.grid.dims;
    const centre = applyPoint(ct.grid.affine, [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]);
    truth = rigidAbout(centre, 5 * deg, [6, -4, 2]);
    fixedFile = await file('fixed.nii.gz', writeImageNifti(resampleToGrid(ct, ct.grid, truth, -1024)));
    fixedLabelsFile = await file(
      'fixed_labels.nii.gz',
      writeImageNifti(resampleLabels(labels, ct.grid, truth)),
    );
    movingFile = { name: 'moving.nii.gz', path: ctPath!, bytes: (await readFile(ctPath!)).length };
    movingLabelsFile = {
      name: 'moving_labels.nii.gz',
      path: segPath!,
      bytes: (await readFile(segPath!)).length,
    };
  }, 240_000);

  afterAll(async () => {
    channel?.close();
    await cluster?.stop();
    collector?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('recovers a known motion with MIND; the NIfTI field read independently warps the labels as the service did', async () => {
    const progress: string[] = [];
    const r = await collectRegistration(
      client.register(
        registerUploadRequests(
          {
            returnDisplacement: true,
            displacementFormat: register.DisplacementFormat.NIFTI,
            returnInverse: true,
            returnWarpedImage: true,
          },
          withLabels(),
        ),
        { deadline: 120_000 },
      ),
      (p) => progress.push(p.stage),
    );
    expect(new Set(progress)).toEqual(
      new Set(['read', 'affine-coarse', 'affine-blocks', 'cost-volume', 'convex', 'adam']),
    );
    expect(r.geometry?.fixed?.dims.map(Number)).toEqual([...ct.grid.dims]);
    expect(r.transform?.fixedToMoving?.frame).toBe(common.CoordinateFrame.LPS);

    // The field: x_moving = x_fixed + u(x_fixed), LPS mm, on the fixed grid.
    const u = readVectorNifti(r.displacementNifti);
    expect(u.grid.dims).toEqual(ct.grid.dims);
    u.grid.affine.forEach((v, i) => expect(v).toBeCloseTo(ct.grid.affine[i]!, 3));
    const liver = resampleLabels(labels, ct.grid, truth).data.map((v) => (v === LIVER ? 1 : 0));
    const n = voxelCount(ct.grid);
    const [nx, ny] = ct.grid.dims;
    let err = 0;
    let count = 0;
    for (let q = 0; q < n; q++) {
      if (!liver[q]) continue;
      const ijk = [q % nx, Math.floor(q / nx) % ny, Math.floor(q / (nx * ny))];
      const x = applyPoint(ct.grid.affine, ijk);
      const want = applyPoint(truth, x);
      err += Math.hypot(...[0, 1, 2].map((c) => x[c]! + u.data[c * n + q]! - want[c]!));
      count++;
    }
    const epe = err / count;
    console.log(`register e2e: liver EPE ${epe.toFixed(2)} mm over ${count} voxels (motion 5°, 7.5 mm)`);
    expect(epe).toBeLessThan(2);

    // The labels through the independently read field = the service's warped labels.
    const mine = resampleLabels(labels, ct.grid, IDENTITY, u).data;
    const w = r.warped.get('organs')!;
    expect(w.fileName).toBe('organs.nii.gz');
    const theirs = (
      await volumeLabels(await openVolume({ kind: 'bytes', data: w.nifti, filename: w.fileName }))
    ).data;
    let same = 0;
    for (let q = 0; q < n; q++) if (mine[q] === theirs[q]) same++;
    expect(same / n).toBeGreaterThan(0.999);
    expect(r.warped.get('moving')!.nifti.length).toBeGreaterThan(0);

    // The inverse: u(x) + u_inv(x + u(x)) ≈ 0 inside the liver.
    const uInv = readVectorNifti(r.inverseNifti);
    const back = resampleThroughField(uInv, ct.grid, IDENTITY, u).data;
    let residual = 0;
    for (let q = 0; q < n; q++) {
      if (!liver[q]) continue;
      residual += Math.hypot(...[0, 1, 2].map((c) => u.data[c * n + q]! + back[c * n + q]!));
    }
    expect(residual / count).toBeLessThan(0.5);

    const s = r.summary!;
    const quality = s.quality!;
    expect(quality.foldingFraction).toBeLessThan(0.001);
    expect(quality.logJacobianStd).toBeLessThan(0.2);
    expect(quality.metric).toBe(register.SimilarityMetric.NCC);
    expect(quality.finalSimilarity).toBeGreaterThan(quality.initialSimilarity);
    const liverDice = quality.labelOverlaps.find((o) => o.label === 'organs' && o.value === LIVER)!;
    expect(liverDice.diceBefore).toBeLessThan(0.9);
    expect(liverDice.diceAfter).toBeGreaterThan(0.9);
    expect(s.timings.map((t) => t.stage)).toEqual(
      expect.arrayContaining(['read', 'features', 'affine', 'deformable', 'quality']),
    );
    expect(s.model).toBeUndefined();
    // No GPU here: the heavy steps run on the CPU mix and requests default to a 3 mm working grid.
    const { info } = await client.getInfo({});
    expect(info?.limits).toMatchObject({ registration_device: 'cpu', default_working_spacing_mm: '3' });
    expect(await clusterMetric(cluster, 'register', 'curia_register_in_flight')).toBe(0);
  }, 180_000);

  it('registers with Curia features through Preprocess and Embed, traced across the three services', async () => {
    const traceId = randomBytes(16).toString('hex');
    const before = await clusterMetric(cluster, 'embed', 'curia_embed_slices_total');
    const r = await call(
      { transform: register.TransformModel.AFFINE, features: register.FeatureSet.CURIA },
      pair(),
      { metadata: Metadata({ traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }) },
    );
    const s = r.summary!;
    expect(s.model?.demoWeights).toBe(true);
    expect(s.timings.map((t) => t.stage)).toEqual(expect.arrayContaining(['curia_features', 'affine']));
    // Every slice of both volumes went through Embed exactly once (the PCA's sample slices are projected
    // by Register from the tokens it already has).
    expect((await clusterMetric(cluster, 'embed', 'curia_embed_slices_total')) - before).toBe(
      2 * ct.grid.dims[2],
    );
    const m = r.transform!.fixedToMoving!.m;
    const [nx, ny, nz] = ct.grid.dims;
    const c = applyPoint(ct.grid.affine, [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]);
    const got = applyPoint(m, c);
    const want = applyPoint(truth, c);
    console.log(
      `register e2e: Curia features (demo weights), affine centre error ${Math.hypot(...[0, 1, 2].map((i) => got[i]! - want[i]!)).toFixed(2)} mm`,
    );
    // Demo weights are random, yet their tokens still carry the anatomy's layout (measured 0.86 mm).
    expect(Math.hypot(...[0, 1, 2].map((i) => got[i]! - want[i]!))).toBeLessThan(3);
    expect(await servicesInTrace(collector.spans, traceId, 3)).toEqual(['embed', 'preprocess', 'register']);
  }, 180_000);

  it('answers bad requests with precise statuses, naming the input or option', async () => {
    const small = (dims: [number, number, number], fill: (q: number) => number): Uint8Array => {
      const grid: Grid = { dims, affine: [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1] };
      const data = Float32Array.from({ length: voxelCount(grid) }, (_, q) => fill(q));
      return writeImageNifti({ grid, channels: 1, data });
    };
    const movingAs = (f: StudyFile): RegisterInputFiles[] => [
      pair()[0]!,
      {
        input: { inputId: 'moving', role: register.InputRole.MOVING, modality: register.Modality.CT },
        files: [f],
      },
    ];
    // A 2D image.
    await rejectsWith(
      call(
        {},
        movingAs(
          await file(
            'flat.nii.gz',
            small([64, 64, 1], () => 0),
          ),
        ),
      ),
      Status.INVALID_ARGUMENT,
      /'moving' has dims \[64, 64, 1\].*not 2D images/,
    );
    // A NaN voxel.
    await rejectsWith(
      call(
        {},
        movingAs(
          await file(
            'nan.nii.gz',
            small([16, 16, 16], (q) => (q === 100 ? NaN : q)),
          ),
        ),
      ),
      Status.INVALID_ARGUMENT,
      /'moving'.*non-finite voxels/,
    );
    // A truncated file.
    await rejectsWith(
      call(
        {},
        movingAs(await file('cut.nii.gz', (await readFile(ctPath!)).subarray(0, movingFile.bytes >> 1))),
      ),
      Status.INVALID_ARGUMENT,
      /inputs\[1\]/,
    );
    // Label map on another grid than the moving image.
    await rejectsWith(
      call(
        {},
        pair([
          {
            input: { inputId: 'organs', role: register.InputRole.MOVING_LABEL_MAP, label: 'organs' },
            files: [
              await file(
                'l.nii.gz',
                small([16, 16, 16], () => 1),
              ),
            ],
          },
        ]),
      ),
      Status.INVALID_ARGUMENT,
      /'organs' is not on the moving grid/,
    );
    // No moving input.
    await rejectsWith(call({}, [pair()[0]!]), Status.INVALID_ARGUMENT, /MOVING/);
    // Options no method implements, or that contradict the transform.
    await rejectsWith(
      call({ metric: 3 as register.SimilarityMetric }, pair()),
      Status.INVALID_ARGUMENT,
      /start\.options\.metric 3 is not one of UNSPECIFIED, MSE, NCC, MUTUAL_INFORMATION/,
    );
    await rejectsWith(
      call({ transform: register.TransformModel.AFFINE, searchRadius: 3 }, pair()),
      Status.INVALID_ARGUMENT,
      /search_radius/,
    );
    // Volumes 1 m apart.
    const far: GridField = {
      ...ct,
      grid: { ...ct.grid, affine: ct.grid.affine.map((v, i) => (i === 3 ? v + 1000 : v)) },
    };
    await rejectsWith(
      call({}, movingAs(await file('far.nii.gz', writeImageNifti(far)))),
      Status.FAILED_PRECONDITION,
      /barely overlap in world space/,
    );
    // A working grid whose features would not fit the call's memory budget.
    await rejectsWith(
      call({ workingSpacingMm: 0.5 }, pair()),
      Status.RESOURCE_EXHAUSTED,
      /CURIA_REGISTER_MAX_CALL_BYTES/,
    );
    // Within the call cap but above the process's memory budget.
    await rejectsWith(
      call({ workingSpacingMm: 1.5 }, pair()),
      Status.RESOURCE_EXHAUSTED,
      /this registration \(working grid of \d+ voxels at 1\.5 mm\) needs .* above this process's memory budget of 1073741824 bytes/,
    );
    // A ref outside the allowed roots and a missing one inside get the same answer (no oracle).
    const refused =
      /^inputs\[1\] 'moving': source\.ref\.uri: the ref is not a readable file under the allowed roots$/;
    for (const uri of [`file://${ctPath!}`, `file://${join(work, 'missing.nii.gz')}`]) {
      await rejectsWith(
        call({}, [
          pair()[0]!,
          { input: { inputId: 'moving', role: register.InputRole.MOVING }, ref: { uri } },
        ]),
        Status.NOT_FOUND,
        refused,
      );
    }
    expect(await clusterMetric(cluster, 'register', 'curia_register_in_flight')).toBe(0);
  }, 180_000);

  it('stops at its deadline with DEADLINE_EXCEEDED and when cancelled, leaving nothing running', async () => {
    await rejectsWith(call({}, pair(), { deadline: 1500 }), Status.DEADLINE_EXCEEDED, /deadline/i);
    const ac = new AbortController();
    const p = collectRegistration(
      client.register(registerUploadRequests({}, pair()), { signal: ac.signal, deadline: 120_000 }),
      (e) => {
        if (e.stage === 'affine-coarse') ac.abort();
      },
    );
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    let busy = 1;
    for (let i = 0; i < 50 && busy > 0; i++) {
      busy = await clusterMetric(cluster, 'register', 'curia_register_in_flight');
      if (busy > 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(busy).toBe(0);
    // Still serving.
    const r = await call({ transform: register.TransformModel.RIGID, workingSpacingMm: 6 }, pair());
    expect(r.summary?.quality?.foldingFraction).toBe(0);
  }, 180_000);
});
