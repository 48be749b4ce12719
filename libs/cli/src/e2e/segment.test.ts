import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  collectAnalysis,
  collectSegmentation,
  common,
  createCuriaChannel,
  createCuriaClient,
  fitUploadRequests,
  gateway,
  Metadata,
  segment,
  segmentUploadRequests,
  Status,
  studyFiles,
  studyUploadRequests,
  type Channel,
  type SegmentStartFields,
} from '@curia/client';
import { generatePhantom, phantomToNifti } from '@curia/phantom';
import { inputToCanonical, naturalizedHeader } from '@curia/segment';
import { sharedPathOrSkip } from '@curia/tensors';
import {
  canonicalToInputIndex,
  gridCornerDistanceMm,
  openVolume,
  writeNifti,
  type Volume,
} from '@curia/volume';
import { writeCanonicalSeries } from '@curia/volume/testing';

import { LocalCluster } from '../cluster/launcher.js';
import { clusterMetric } from './cluster-metrics.js';
import { runCuria } from './curia-bin.js';
import { otlpEnv, servicesInTrace, startCollector } from './otlp-collector.js';
import { rejectsWith } from './rejects-with.js';

/**
 * Segmentation end to end through spawned Preprocess, Embed and Segment processes: a head fitted
 * from labelled slices of the shared CT segments that CT and the shared DICOM series, its label map
 * lies on each input grid, a repeat is answered from the token cache, clicks need no head, and bad
 * requests get precise statuses.
 */
const ct = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
const seg = sharedPathOrSkip('data/totalsegmentator/example_seg.nii.gz');
const dicom = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');

const LIVER = 5;
const SPLEEN = 1;

/** Canonical slices of the label map holding both organs, and the liver's centroid (input voxel indices). */
async function organs(
  labels: Volume,
): Promise<{ slices: number[]; liverCentroid: [number, number, number] }> {
  const slices: number[] = [];
  const [n, rows, cols] = labels.geometry.canonicalDims;
  let sum = [0, 0, 0];
  let count = 0;
  for (let k = 0; k < n; k++) {
    const p = await labels.readCanonicalSlice(k);
    let liver = 0;
    let spleen = false;
    for (let i = 0; i < rows * cols; i++) {
      if (p[i] === LIVER) {
        liver++;
        const r = Math.floor(i / cols);
        const c = i % cols;
        sum = [sum[0]! + k, sum[1]! + r, sum[2]! + c];
      }
      if (p[i] === SPLEEN) spleen = true;
    }
    count += liver;
    if (liver > 0 && spleen) slices.push(k);
  }
  const [k, r, c] = sum.map((v) => Math.round(v / count)) as [number, number, number];
  const voxel = canonicalToInputIndex(labels.geometry, k, r, c);
  return { slices, liverCentroid: voxel };
}

/** The label map returned for `inputPath`, checked to lie on its input grid (same dims, voxel centres within 1e-3 mm). */
async function maskOnInputGrid(
  mask: Uint8Array,
  fileName: string,
  inputPath: string,
): Promise<{ mask: Volume; input: Volume }> {
  const input = await openVolume({ kind: 'path', path: inputPath });
  const m = await openVolume({ kind: 'bytes', data: mask, filename: fileName });
  const g = input.geometry;
  expect(m.geometry.inputDims).toEqual(g.inputDims);
  expect(
    gridCornerDistanceMm(
      m.geometry.inputAffine,
      m.geometry.inputFrame,
      g.inputAffine,
      g.inputFrame,
      g.inputDims,
    ),
  ).toBeLessThan(1e-3);
  return { mask: m, input };
}

describe.skipIf(!ct || !seg || !dicom)('SegmentService end to end through the spawned cluster', () => {
  let cluster: LocalCluster;
  let channel: Channel;
  let client: ReturnType<typeof createCuriaClient<typeof segment.SegmentServiceDefinition>>;
  let work: string;
  let labelBytes: Uint8Array;
  let picked: Awaited<ReturnType<typeof organs>>;
  let collector: Awaited<ReturnType<typeof startCollector>>;

  const run = async (path: string, start: SegmentStartFields) =>
    collectSegmentation(
      client.segment(
        segmentUploadRequests({ header: { studyId: 'seg-e2e' }, ...start }, (await studyFiles(path)).files),
        {
          deadline: 120_000,
        },
      ),
    );

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-seg-e2e-'));
    collector = await startCollector();
    cluster = await LocalCluster.start({
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'heads', 'segment', 'gateway'],
      env: { CURIA_SHUTDOWN_GRACE_MS: '2000', ...otlpEnv(collector.url) },
      serviceEnv: {
        heads: { CURIA_HEADS_DIR: join(work, 'heads') },
        segment: {
          CURIA_SEGMENT_HEADS_DIR: join(work, 'segment-heads'),
          CURIA_SEGMENT_MAX_UPLOAD_BYTES: '20000000',
        },
      },
    });
    channel = createCuriaChannel(
      `127.0.0.1:${cluster.endpoints().find((e) => e.service === 'segment')!.grpcPort}`,
    );
    client = createCuriaClient(segment.SegmentServiceDefinition, channel);
    labelBytes = new Uint8Array(await readFile(seg!));
    picked = await organs(await openVolume({ kind: 'path', path: seg! }));
  }, 240_000);

  afterAll(async () => {
    channel?.close();
    await cluster?.stop();
    collector?.server.close();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('fits a head from five labelled slices; the same idempotency key returns the stored version', async () => {
    const labelled = picked.slices
      .filter((_, i) => i % Math.max(1, Math.floor(picked.slices.length / 5)) === 0)
      .slice(0, 5);
    expect(labelled).toHaveLength(5);
    const { files } = await studyFiles(ct!);
    const fit = () =>
      client.fit(
        fitUploadRequests(
          {
            name: 'organs',
            kind: segment.SegmentHeadKind.LINEAR,
            classes: [
              { value: LIVER, label: 'liver' },
              { value: SPLEEN, label: 'spleen' },
            ],
            folds: 5,
            idempotencyKey: 'seg-e2e-organs',
            description: 'liver and spleen from five slices of the shared CT (demo weights)',
          },
          [
            {
              study: {
                header: { studyId: 'seg-e2e-fit' },
                labels: { encoding: { $case: 'nifti', value: labelBytes } },
                labelledSlices: labelled,
              },
              files,
            },
          ],
        ),
        { deadline: 180_000 },
      );
    const first = await fit();
    expect(first.reused).toBe(false);
    expect(first.head?.info?.name).toBe('organs');
    expect(first.head?.info?.version).toBe('1');
    expect(first.head?.info?.labels).toEqual(['liver', 'spleen']);
    expect(first.head?.promptless).toBe(true);
    expect(first.head?.fit?.slices).toBe(5);
    const cv = Object.fromEntries((first.head?.fit?.cvDice ?? []).map((d) => [d.label, d.dice]));
    console.log(`fit cv Dice (demo weights, 5 slices): ${JSON.stringify(cv)}`);
    expect(Object.keys(cv).sort()).toEqual(['liver', 'spleen']);
    const again = await fit();
    expect(again.reused).toBe(true);
    expect(again.head?.info?.version).toBe('1');
    const info = await client.getInfo({});
    expect(info.segmentHeads.map((h) => h.info?.name)).toEqual(['click', 'organs']);
    expect(info.segmentHeads[0]?.acceptsPoints).toBe(true);
    // A new name's first version is promoted; PromoteHead through the real service (issue #17).
    expect(first.head?.info?.promoted).toBe(true);
    const promoted = await client.promoteHead({ name: 'organs', version: '1' });
    expect([promoted.head?.info?.version, promoted.head?.info?.promoted, promoted.previousVersion]).toEqual([
      '1',
      true,
      '1',
    ]);
    await rejectsWith(client.promoteHead({ name: 'organs', version: '9' }), Status.NOT_FOUND, /versions: 1/);
    await rejectsWith(client.promoteHead({ name: 'click', version: '1' }), Status.INVALID_ARGUMENT, /click/);
  }, 240_000);

  it('segments the CT: label map on the input grid, slice masks, volumes, evaluation; a repeat skips Embed', async () => {
    const r = await run(ct!, {
      model: 'organs',
      output: { sliceMasks: true, gzip: true },
      referenceLabels: { encoding: { $case: 'nifti', value: labelBytes } },
    });
    expect(r.geometry?.classes.map((c) => c.label)).toEqual(['liver', 'spleen']);
    expect(r.maskFileName).toBe('mask.nii.gz');
    const { input } = await maskOnInputGrid(r.mask, r.maskFileName, ct!);
    const g = input.geometry;
    const summary = r.summary!;
    expect(summary.slicesEmbedded + summary.slicesFromCache).toBe(g.canonicalDims[0]);
    const liver = summary.classes.find((c) => c.label === 'liver')!;
    const voxelMl = (g.inputSpacing[0] * g.inputSpacing[1] * g.inputSpacing[2]) / 1000;
    expect(liver.volumeMl).toBeCloseTo(Number(liver.voxelCount) * voxelMl, 6);
    const dice = Object.fromEntries(summary.evaluation.map((e) => [e.label, e.dice]));
    console.log(
      `segment (demo weights): Dice ${JSON.stringify(dice)}, HD95 ${JSON.stringify(summary.evaluation.map((e) => e.hd95Mm))}`,
    );
    expect(dice.liver).toBeGreaterThan(0.5);
    expect(r.slices.length).toBeGreaterThan(0);
    for (const s of r.slices) {
      for (const m of s.masks) {
        expect(m.dims).toEqual([g.inputDims[0], g.inputDims[1]]);
        expect(m.counts.reduce((a, b) => a + b, 0)).toBe(g.inputDims[0] * g.inputDims[1]);
      }
    }
    const embedded = () => clusterMetric(cluster, 'embed', 'curia_embed_slices_total');
    const before = await embedded();
    const repeat = await run(ct!, { model: 'organs', output: { omitNiftiMask: true } });
    expect(repeat.summary?.slicesEmbedded).toBe(0);
    expect(repeat.summary?.slicesFromCache).toBe(g.canonicalDims[0]);
    expect(await embedded()).toBe(before);
    expect(repeat.mask.length).toBe(0);
  }, 240_000);

  it('segments the JPEG 2000 DICOM series with the same head; the label map carries the series affine', async () => {
    const r = await run(dicom!, { model: 'organs@1' });
    await maskOnInputGrid(r.mask, r.maskFileName, dicom!);
    expect(r.summary?.classes.map((c) => c.label)).toEqual(['liver', 'spleen']);
  }, 240_000);

  it('runs a segmentation head inside AnalyzeStudy: embedded once with the other outputs, same labels as Segment', async () => {
    const gw = createCuriaClient(
      gateway.GatewayServiceDefinition,
      createCuriaChannel(`127.0.0.1:${cluster.endpoints().find((e) => e.service === 'gateway')!.grpcPort}`),
    );
    const direct = await run(ct!, { model: 'organs' });
    const embedded = () => clusterMetric(cluster, 'embed', 'curia_embed_slices_total');
    const before = await embedded();
    const { files } = await studyFiles(ct!);
    const r = await collectAnalysis(
      gw.analyzeStudy(
        studyUploadRequests(
          {
            header: { studyId: 'seg-gw' },
            embeddingOutputs: [
              { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
            ],
            segmentationHeads: ['organs'],
          },
          files,
        ),
        { deadline: 120_000 },
      ),
    );
    const slices = r.geometry!.numCanonicalSlices;
    expect(r.embeddings).toHaveLength(slices);
    // Every slice went through Embed once, for the CLS output and the segmentation tokens together.
    expect((await embedded()) - before).toBe(slices);
    const viaGateway = r.segmentation.organs!;
    expect(viaGateway.summary?.head?.info?.name).toBe('organs');
    const a = await openVolume({ kind: 'bytes', data: viaGateway.mask, filename: viaGateway.maskFileName });
    const b = await openVolume({ kind: 'bytes', data: direct.mask, filename: direct.maskFileName });
    for (let k = 0; k < slices; k++)
      expect(await a.readCanonicalSlice(k)).toEqual(await b.readCanonicalSlice(k));
    await rejectsWith(
      collectAnalysis(
        gw.analyzeStudy(
          studyUploadRequests({ header: { studyId: 'x' }, segmentationHeads: ['click'] }, files),
        ),
      ),
      Status.FAILED_PRECONDITION,
      /segmentation_heads: 'click@1' needs prompts/,
    );
    await rejectsWith(
      collectAnalysis(
        gw.analyzeStudy(
          studyUploadRequests({ header: { studyId: 'x' }, segmentationHeads: ['nope'] }, files),
        ),
      ),
      Status.NOT_FOUND,
      /segmentation_heads\[0\]: segmentation head 'nope' is not served/,
    );
  }, 240_000);

  it('returns a DICOM SEG for an uploaded series that a DICOM library reads and that references the source instances', async () => {
    const series = join(work, 'series');
    const uid = (x: string) =>
      `2.25.${BigInt(`0x${Buffer.from(x).toString('hex').padEnd(16, '0').slice(0, 16)}`)}`;
    await writeCanonicalSeries(await openVolume({ kind: 'path', path: ct! }), series, {
      series: uid('series'),
      study: uid('study'),
      frameOfReference: uid('frame'),
      instance: (k) => `${uid('instance')}.${k + 1}`,
    });
    const r = await run(series, { model: 'organs', output: { dicomSeg: true, omitNiftiMask: true } });
    expect(r.mask.length).toBe(0);
    expect(r.dicomSeg.length).toBeGreaterThan(0);
    const seg = naturalizedHeader(r.dicomSeg);
    expect(seg.Modality).toBe('SEG');
    expect(seg.StudyInstanceUID).toBe(uid('study'));
    expect(seg.FrameOfReferenceUID).toBe(uid('frame'));
    const referenced = (
      seg.ReferencedSeriesSequence as {
        SeriesInstanceUID: string;
        ReferencedInstanceSequence: { ReferencedSOPInstanceUID: string }[];
      }[]
    )[0]!;
    expect(referenced.SeriesInstanceUID).toBe(uid('series'));
    const slices = (await openVolume({ kind: 'path', path: series })).geometry.canonicalDims[0];
    expect(new Set(referenced.ReferencedInstanceSequence.map((x) => x.ReferencedSOPInstanceUID))).toEqual(
      new Set(Array.from({ length: slices }, (_, k) => `${uid('instance')}.${k + 1}`)),
    );
    expect((seg.SegmentSequence as { SegmentLabel: string }[]).map((x) => x.SegmentLabel)).toEqual([
      'liver',
      'spleen',
    ]);
    // A ref source cannot give a SEG (the service does not read the files itself).
    await rejectsWith(
      collectSegmentation(
        client.segment(
          // eslint-disable-next-line @typescript-eslint/require-await -- a one-message request stream
          (async function* () {
            yield {
              msg: {
                $case: 'start' as const,
                value: segment.SegmentStart.fromPartial({
                  header: { studyId: 'x' },
                  source: { $case: 'ref', value: { uri: 'file:///nowhere' } },
                  model: 'organs',
                  output: { dicomSeg: true },
                }),
              },
            };
          })(),
        ),
      ),
      Status.FAILED_PRECONDITION,
      /output\.dicom_seg needs the DICOM series uploaded/,
    );
  }, 240_000);

  it('segments from a click without any head, on the default backbone', async () => {
    const r = await run(ct!, {
      points: [
        {
          xyz: picked.liverCentroid,
          space: segment.CoordinateSpace.INPUT_VOXEL,
          positive: true,
          label: 'liver',
        },
      ],
      referenceLabels: { encoding: { $case: 'nifti', value: labelBytes } },
    });
    expect(r.summary?.head?.info?.name).toBe('click');
    const liver = r.summary!.classes.find((c) => c.label === 'liver')!;
    expect(Number(liver.voxelCount)).toBeGreaterThan(0);
    const { mask } = await maskOnInputGrid(r.mask, r.maskFileName, ct!);
    // The clicked voxel itself is in the object.
    const c = inputToCanonical(mask.geometry, picked.liverCentroid);
    const plane = await mask.readCanonicalSlice(c.slice);
    expect(plane[c.row * mask.geometry.canonicalDims[2] + c.col]).toBe(1);
    console.log(
      `click (demo weights): ${liver.voxelCount} voxels, Dice vs liver ${r.summary?.evaluation[0]?.dice.toFixed(3)}`,
    );
  }, 240_000);

  it('works from the command line: curia segment fit, curia segment FILE --head / --point with --out and --png', async () => {
    const target = `127.0.0.1:${cluster.endpoints().find((e) => e.service === 'segment')!.grpcPort}`;
    const labelled = picked.slices.slice(0, 3).join(',');
    const fit = await runCuria([
      'segment',
      'fit',
      '--name',
      'cli-organs',
      '--image',
      ct!,
      '--labels',
      seg!,
      '--slices',
      labelled,
      '--classes',
      `${LIVER}=liver`,
      '--folds',
      '3',
      '--target',
      target,
      '--json',
    ]);
    expect(fit.stderr).toBe('');
    expect(fit.code).toBe(0);
    expect(JSON.parse(fit.stdout)).toMatchObject({
      head: 'cli-organs@1',
      reused: false,
      slices: 3,
      folds: 3,
    });
    const out = join(work, 'cli-mask.nii.gz');
    const png = join(work, 'cli-png');
    const run1 = await runCuria([
      'segment',
      ct!,
      '--head',
      'cli-organs',
      '--out',
      out,
      '--png',
      png,
      '--reference',
      seg!,
      '--target',
      target,
      '--json',
    ]);
    expect(run1.code).toBe(0);
    const doc = JSON.parse(run1.stdout) as {
      head: string;
      maskFile: string;
      evaluation: { label: string; dice: number }[];
    };
    expect(doc.head).toBe('cli-organs@1');
    expect(doc.maskFile).toBe(out);
    expect(doc.evaluation[0]?.label).toBe('liver');
    await maskOnInputGrid(new Uint8Array(await readFile(out)), 'mask.nii.gz', ct!);
    const pngs = await readdir(png);
    expect(pngs.length).toBeGreaterThan(0);
    expect(pngs.every((f) => /^slice-\d{3}\.png$/.test(f))).toBe(true);
    const [i, j, k] = picked.liverCentroid;
    const click = await runCuria([
      'segment',
      ct!,
      '--point',
      `${i},${j},${k}`,
      '--label',
      'liver',
      '--out',
      join(work, 'click.nii'),
      '--target',
      target,
    ]);
    expect(click.code).toBe(0);
    expect(click.stdout).toMatch(/head click@1 on .*\n {2}liver: \d+ voxels/);
    const bad = await runCuria(['segment', ct!, '--point', '1,2', '--target', target]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--point '1,2': expected x,y,z/);
    const unknown = await runCuria(['segment', ct!, '--head', 'nope', '--target', target]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^curia segment: NOT_FOUND: model: no segmentation head named 'nope'/);
  }, 240_000);

  it('puts Segment, Preprocess and Embed of one call in one trace', async () => {
    const p = generatePhantom({ size: [64, 64, 4], seed: 23 });
    const path = join(work, 'trace.nii.gz');
    await writeFile(path, phantomToNifti(p, { gzip: true }).image);
    const traceId = randomBytes(16).toString('hex');
    await collectSegmentation(
      client.segment(
        segmentUploadRequests(
          { header: { studyId: 'trace' }, model: 'organs' },
          (await studyFiles(path)).files,
        ),
        {
          metadata: Metadata({ traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` }),
        },
      ),
    );
    expect(await servicesInTrace(collector.spans, traceId, 3)).toEqual(['embed', 'preprocess', 'segment']);
  }, 120_000);

  it('leaves no work queued in Embed when the caller cancels', async () => {
    const p = generatePhantom({ size: [128, 128, 60], seed: 21 });
    const path = join(work, 'cancel.nii.gz');
    await writeFile(path, phantomToNifti(p, { gzip: true }).image);
    const abort = new AbortController();
    const stream = client.segment(
      segmentUploadRequests(
        { header: { studyId: 'cancel' }, model: 'organs' },
        (await studyFiles(path)).files,
      ),
      {
        signal: abort.signal,
      },
    );
    await expect(
      (async () => {
        for await (const m of stream) if (m.msg?.$case === 'geometry') abort.abort();
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    const busy = async () =>
      (await clusterMetric(cluster, 'embed', 'curia_embed_inflight_slices')) +
      (await clusterMetric(cluster, 'segment', 'curia_segment_in_flight'));
    let left = 1;
    for (let i = 0; i < 50 && left > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await busy();
    }
    expect(left).toBe(0);
    const embedded = await clusterMetric(cluster, 'embed', 'curia_embed_slices_total');
    await new Promise((r) => setTimeout(r, 1000));
    expect(await clusterMetric(cluster, 'embed', 'curia_embed_slices_total')).toBe(embedded);
  }, 120_000);

  it('answers bad requests with precise statuses, before any stage work where it can', async () => {
    const ctFiles = (await studyFiles(ct!)).files;
    const voxel = (xyz: number[]) => ({ xyz, space: segment.CoordinateSpace.INPUT_VOXEL, positive: true });
    await rejectsWith(
      run(ct!, { model: 'nope' }),
      Status.NOT_FOUND,
      /model: no segmentation head named 'nope' \(heads: click, (cli-organs, )?organs\)/,
    );
    await rejectsWith(
      run(ct!, { model: 'organs', points: [voxel([1, 1, 1])] }),
      Status.FAILED_PRECONDITION,
      /does not accept point prompts/,
    );
    await rejectsWith(
      run(ct!, { model: 'organs', classNames: ['pancreas'] }),
      Status.INVALID_ARGUMENT,
      /class_names\[0\] 'pancreas' is not a class/,
    );
    await rejectsWith(run(ct!, { model: 'click' }), Status.FAILED_PRECONDITION, /needs|point prompts/);
    const outside = run(ct!, { points: [voxel([5000, 3, 3])] });
    await rejectsWith(outside, Status.INVALID_ARGUMENT, /^points\[0\]\.xyz lies outside the volume$/);
    await rejectsWith(
      run(ct!, { points: [voxel([Number.NaN, 3, 3])] }),
      Status.INVALID_ARGUMENT,
      /points\[0\]\.xyz must hold exactly 3 finite coordinates/,
    );
    await rejectsWith(
      run(ct!, { points: [{ xyz: [1, 2, 3], space: segment.CoordinateSpace.PATIENT_MM, positive: true }] }),
      Status.INVALID_ARGUMENT,
      /points\[0\]\.xyz: a PATIENT_MM prompt needs frame RAS or LPS/,
    );
    // A label map on another grid (the DICOM study's labels are the CT's).
    const dicomFiles = (await studyFiles(dicom!)).files;
    await rejectsWith(
      client.fit(
        fitUploadRequests({ name: 'wrong-grid', classes: [{ value: LIVER, label: 'liver' }] }, [
          {
            study: { header: { studyId: 'x' }, labels: { encoding: { $case: 'nifti', value: labelBytes } } },
            files: dicomFiles,
          },
        ]),
      ),
      Status.INVALID_ARGUMENT,
      /studies\[0\]\.labels dims \[\d+, \d+, \d+\] do not match the study's input grid dims/,
    );
    // An empty label map.
    const input = await openVolume({ kind: 'path', path: ct! });
    const empty = writeNifti({
      dims: [...input.geometry.inputDims],
      datatypeCode: 2,
      bitpix: 8,
      voxelBytes: new Uint8Array(input.geometry.inputDims.reduce((a, b) => a * b, 1)),
      affine: input.geometry.inputAffine,
    });
    await rejectsWith(
      client.fit(
        fitUploadRequests({ name: 'empty' }, [
          {
            study: { header: { studyId: 'x' }, labels: { encoding: { $case: 'nifti', value: empty } } },
            files: ctFiles,
          },
        ]),
      ),
      Status.INVALID_ARGUMENT,
      /studies\[0\]\.labels is empty/,
    );
    await rejectsWith(
      client.fit(fitUploadRequests({ name: 'Bad Name' }, [])),
      Status.INVALID_ARGUMENT,
      /start\.name 'Bad Name' must be lowercase/,
    );
    // Oversize: the upload limit is 20 MB here.
    const big = join(work, 'big.nii');
    await writeFile(big, new Uint8Array(21_000_000));
    await rejectsWith(
      run(big, { model: 'organs' }),
      Status.RESOURCE_EXHAUSTED,
      /CURIA_SEGMENT_MAX_UPLOAD_BYTES/,
    );
  }, 240_000);
});
