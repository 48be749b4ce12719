import { execFileSync } from 'node:child_process';
import { readdir, readFile, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pathToFileURL } from 'node:url';

import { ClientError, Status } from 'nice-grpc';
import { afterEach, describe, expect, it } from 'vitest';

import { createLogger } from '@curia/kit';
import { presetArchitecture } from '@curia/model';
import { common, type preprocess } from '@curia/proto';
import { float32ToFloat16, SafetensorsFile, sharedPathOrSkip, toFloat32, type DType } from '@curia/tensors';
import { openVolume, preprocessSlices } from '@curia/volume';

import { chunkMessages, requestStream, startPreprocessServer, type Harness } from './testing/harness.js';
import { int16Nifti, syntheticCt } from './testing/nifti.js';

const harnesses: Harness[] = [];
const tmpDirs: string[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
  await Promise.all(tmpDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function start(
  env: Record<string, string> = {},
  options: Parameters<typeof startPreprocessServer>[1] = {},
): Promise<Harness> {
  const h = await startPreprocessServer(env, options);
  harnesses.push(h);
  return h;
}

type Req = preprocess.PreprocessRequest;
type Res = preprocess.PreprocessResponse;

function startMsg(
  source: NonNullable<preprocess.PreprocessStart['source']>,
  options: Partial<common.PreprocessOptions> = {},
): Req {
  return {
    msg: {
      $case: 'start',
      value: {
        header: {
          studyId: 'test-1',
          format: common.VolumeFormat.AUTO,
          seriesInstanceUid: '',
          volumeIndex: 0,
        },
        source,
        options: { modelBundle: '', outputDtype: common.DType.F32, ...options },
      },
    },
  };
}

const streamed = { $case: 'streamed' as const, value: { fileCount: 0, totalBytes: 0 } };
const indices = (ix: number[]): common.SliceSelection => ({
  selection: { $case: 'indices', value: { indices: ix } },
});

const requests = requestStream;

/** The one answer to a ref that cannot be read (missing, outside the roots, not a regular file). */
const REF_REFUSED = {
  code: 'NOT_FOUND',
  details: 'start.ref.uri: the ref is not a readable file under the allowed roots',
};

async function collect(h: Harness, msgs: Iterable<Req>): Promise<Res[]> {
  const out: Res[] = [];
  for await (const r of h.client.preprocess(requests(msgs))) out.push(r);
  return out;
}

async function statusOf(p: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ClientError) return { code: Status[e.code], details: e.details };
    throw e;
  }
  return { code: 'OK', details: '' };
}

function slicesOf(res: Res[]): preprocess.PreprocessedSlice[] {
  return res.flatMap((r) => (r.msg?.$case === 'slice' ? [r.msg.value] : []));
}

function pixelsOf(s: preprocess.PreprocessedSlice): Float32Array {
  const t = s.pixels!;
  const dtype: DType = t.dtype === common.DType.F16 ? 'F16' : 'F32';
  return toFloat32({ dtype, shape: t.shape, data: t.data });
}

async function reference(name: string): Promise<{ values: Float32Array; picked: number[] } | null> {
  const st = sharedPathOrSkip(`reference/preprocess/${name}.safetensors`);
  const js = sharedPathOrSkip(`reference/preprocess/${name}.json`);
  if (!st || !js) return null;
  const f = await SafetensorsFile.open(st);
  const values = toFloat32(await f.read('pixel_values'));
  const picked = (JSON.parse(await readFile(js, 'utf8')) as { picked_slice_indices: number[] })
    .picked_slice_indices;
  return { values, picked };
}

function maxDiff(a: Float32Array, ref: Float32Array, refOffset: number): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - ref[refOffset + i]!));
  return m;
}

const N = 512 * 512;

function expectParity(res: Res[], ref: { values: Float32Array; picked: number[] }, tol: number): void {
  const slices = slicesOf(res);
  expect(slices.map((s) => s.mapping?.canonicalIndex)).toEqual(ref.picked);
  slices.forEach((s, i) => {
    expect(s.pixels?.shape).toEqual([1, 512, 512]);
    expect(maxDiff(pixelsOf(s), ref.values, i * N)).toBeLessThanOrEqual(tol);
  });
  const done = res.at(-1)?.msg;
  expect(done?.$case).toBe('done');
  if (done?.$case === 'done') expect(done.value.slicesSent).toBe(ref.picked.length);
}

async function sharedFile(rel: string): Promise<Uint8Array | null> {
  const p = sharedPathOrSkip(rel);
  return p ? new Uint8Array(await readFile(p)) : null;
}

async function metricValue(h: Harness, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = h.server.metrics.registry.getSingleMetric(name);
  if (!m) return 0;
  const v = (await m.get()).values.find((x) =>
    Object.entries(labels).every(([k, want]) => (x.labels as Record<string, unknown>)[k] === want),
  );
  return v?.value ?? 0;
}

describe('PreprocessService.Preprocess parity with the shared references', () => {
  it('streams example_ct_sm in 64 KiB chunks and matches the reference (geometry documented)', async () => {
    const ref = await reference('example_ct_sm');
    const data = await sharedFile('data/totalsegmentator/example_ct_sm.nii.gz');
    if (!ref || !data) return;
    const h = await start();
    const res = await collect(h, [
      startMsg(streamed, { selection: indices([...ref.picked].reverse()) }),
      ...chunkMessages([{ name: 'ct.nii.gz', data }], 64 * 1024),
    ]);
    expect(res[0]?.msg?.$case).toBe('geometry');
    const geo = res[0]?.msg?.$case === 'geometry' ? res[0].msg.value : undefined;
    expect(geo?.numCanonicalSlices).toBe(30);
    expect(geo?.selectedCount).toBe(ref.picked.length);
    expect(geo?.geometry?.input?.dims).toEqual([122, 101, 30]);
    expect(geo?.geometry?.input?.axcodes).toBe('RAS');
    // RAS input: i (R) and j (A) flip to L and P, k stays S.
    expect(geo?.geometry?.canonical?.dims).toEqual([122, 101, 30]);
    expect(geo?.geometry?.canonical?.axcodes).toBe('LPS');
    expect(geo?.geometry?.canonicalToInputAxes).toEqual([0, 1, 2]);
    expect(geo?.geometry?.canonicalAxisFlipped).toEqual([true, true, false]);
    expect(geo?.spec?.clipBelowAir).toBe(false);
    expectParity(res, ref, 1e-3);
    const s0 = slicesOf(res)[0]!;
    expect(s0.mapping).toEqual({
      canonicalIndex: ref.picked[0],
      inputSliceIndex: ref.picked[0],
      inputAxis: 2,
    });
    // Stats undo the z-score: min pixel * std + mean is the resized slice's minimum (>= raw min -1024 - overshoot).
    const px = pixelsOf(s0);
    let min = Infinity;
    for (const v of px) min = Math.min(min, v);
    expect(min * s0.rawStats!.std + s0.rawStats!.mean).toBeCloseTo(s0.rawStats!.min, 1);
    const done = res.at(-1)?.msg;
    if (done?.$case === 'done') expect(done.value.bytesReceived).toBe(data.length);
    expect(await metricValue(h, 'curia_preprocess_slices_total')).toBe(ref.picked.length);
  });

  it('streams the DICOM series as files in shuffled order and matches the reference', async () => {
    const ref = await reference('example_ct_dicom');
    const dir = sharedPathOrSkip('data/totalsegmentator/example_ct_dicom');
    if (!ref || !dir) return;
    const names = (await readdir(dir)).sort();
    // Deterministic shuffle: a stride permutation.
    const order = names.map((_, i) => names[(i * 7 + 3) % names.length]!);
    const files = await Promise.all(
      order.map(async (n, i) => ({
        name: `${String(i).padStart(4, '0')}.dcm`,
        data: await readFile(join(dir, n)),
      })),
    );
    const h = await start();
    const res = await collect(h, [
      startMsg(
        { $case: 'streamed', value: { fileCount: files.length, totalBytes: 0 } },
        { selection: indices(ref.picked) },
      ),
      ...chunkMessages(files, 256 * 1024),
    ]);
    const geo = res[0]?.msg?.$case === 'geometry' ? res[0].msg.value : undefined;
    expect(geo?.numCanonicalSlices).toBe(20);
    expect(geo?.geometry?.canonical?.axcodes).toBe('LPS');
    expect(geo?.geometry?.input?.affine?.frame).toBe(common.CoordinateFrame.LPS);
    expectParity(res, ref, 1e-3);
  });

  it('applies clip_below_air and matches example_ct_sm_clip; F16 output is within 1e-2', async () => {
    const ref = await reference('example_ct_sm_clip');
    const data = await sharedFile('data/totalsegmentator/example_ct_sm.nii.gz');
    if (!ref || !data) return;
    const h = await start();
    const res = await collect(h, [
      startMsg(streamed, { selection: indices(ref.picked), clipBelowAir: true }),
      ...chunkMessages([{ name: 'ct.nii.gz', data }], 1024 * 1024),
    ]);
    expectParity(res, ref, 1e-3);
    const half = await collect(h, [
      startMsg(streamed, {
        selection: indices(ref.picked),
        clipBelowAir: true,
        outputDtype: common.DType.F16,
      }),
      ...chunkMessages([{ name: 'ct.nii.gz', data }], 1024 * 1024),
    ]);
    expect(slicesOf(half)[0]?.pixels?.dtype).toBe(common.DType.F16);
    expect(slicesOf(half)[0]?.pixels?.data.length).toBe(2 * N);
    expectParity(half, ref, 1e-2);
  });
});

describe('PreprocessService.Preprocess ref sources', () => {
  it('reads a file:// ref under an allowed root and refuses one outside', async () => {
    const ref = await reference('example_ct_sm');
    const path = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
    const root = sharedPathOrSkip('data');
    if (!ref || !path || !root) return;
    const h = await start({ CURIA_PREPROCESS_ALLOWED_ROOTS: `/nonexistent-root,${root}` });
    const uri = pathToFileURL(path).href;
    const res = await collect(h, [
      startMsg({ $case: 'ref', value: { uri } }, { selection: indices(ref.picked) }),
    ]);
    expectParity(res, ref, 1e-3);
    const done = res.at(-1)?.msg;
    if (done?.$case === 'done') expect(done.value.bytesReceived).toBe(0);

    const outside = join(tmpdir(), `curia-pp-outside-${process.pid}.nii.gz`);
    await writeFile(outside, await readFile(path));
    tmpDirs.push(outside);
    const s = await statusOf(
      collect(h, [startMsg({ $case: 'ref', value: { uri: pathToFileURL(outside).href } })]),
    );
    expect(s).toEqual(REF_REFUSED);
    expect(s.details).not.toContain(outside);
  });

  it('answers missing, outside and FIFO refs alike, and no path reaches the status or the logs', async () => {
    const base = await mkdtemp(join(tmpdir(), 'curia-pp-phi-'));
    tmpDirs.push(base);
    const root = join(base, 'data');
    await mkdir(join(root, 'DOE^JOHN_19700101'), { recursive: true });
    const missing = join(root, 'DOE^JOHN_19700101', 'ct.nii.gz');
    const outside = join(base, 'DOE^JOHN_19700101.nii.gz');
    await writeFile(outside, int16Nifti([4, 4, 2], new Int16Array(32)));
    const fifo = join(root, 'DOE^JOHN_19700101', 'pipe.nii.gz');
    execFileSync('mkfifo', [fifo]);
    const lines: string[] = [];
    const logger = createLogger('preprocess', 'trace', '', { write: (l: string) => void lines.push(l) });
    const h = await start({ CURIA_PREPROCESS_ALLOWED_ROOTS: root }, { logger });
    for (const p of [missing, outside, fifo]) {
      const t0 = performance.now();
      const s = await statusOf(
        collect(h, [startMsg({ $case: 'ref', value: { uri: pathToFileURL(p).href } })]),
      );
      expect(s, p).toEqual(REF_REFUSED);
      expect(performance.now() - t0).toBeLessThan(5000);
    }
    const logged = lines.join('');
    expect(logged).toContain('rpc finished');
    for (const text of [logged, REF_REFUSED.details]) {
      expect(text).not.toContain('DOE^JOHN');
      expect(text).not.toContain(root);
    }
  });

  it('refuses every ref when no root is configured, saying how to allow it', async () => {
    const h = await start();
    const s = await statusOf(collect(h, [startMsg({ $case: 'ref', value: { uri: 'file:///tmp/x.nii' } })]));
    expect(s.code).toBe('FAILED_PRECONDITION');
    expect(s.details).toContain('CURIA_PREPROCESS_ALLOWED_ROOTS');
  });
});

describe('PreprocessService.Preprocess bad inputs', () => {
  it('maps protocol and file errors to precise statuses', async () => {
    const data = await sharedFile('data/totalsegmentator/example_ct_sm.nii.gz');
    const path = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
    const root = sharedPathOrSkip('data');
    if (!data || !path || !root) return;
    const h = await start({
      CURIA_PREPROCESS_MAX_UPLOAD_BYTES: String(200 * 1024),
      CURIA_PREPROCESS_ALLOWED_ROOTS: root,
    });
    const one = (name: string, bytes: Uint8Array): Req[] => [
      startMsg(streamed),
      ...chunkMessages([{ name, data: bytes }], 64 * 1024),
    ];
    const truncated = gzipSync(Buffer.alloc(100_000, 7)).subarray(0, 60);
    const cases: [string, Req[], string][] = [
      ['truncated gzip', one('a.nii.gz', truncated), 'INVALID_ARGUMENT'],
      [
        'text file',
        one('a.txt', new TextEncoder().encode('hello, not a volume\n'.repeat(20))),
        'INVALID_ARGUMENT',
      ],
      ['oversize upload', one('a.nii.gz', data), 'RESOURCE_EXHAUSTED'],
      [
        'announced oversize',
        [startMsg({ $case: 'streamed', value: { fileCount: 1, totalBytes: 1e9 } })],
        'RESOURCE_EXHAUSTED',
      ],
      ['chunk before start', [...chunkMessages([{ name: 'a', data: truncated }], 64)], 'INVALID_ARGUMENT'],
      ['two starts', [startMsg(streamed), startMsg(streamed)], 'INVALID_ARGUMENT'],
      ['empty upload', [startMsg(streamed)], 'INVALID_ARGUMENT'],
      [
        'ref plus chunks',
        [
          startMsg({ $case: 'ref', value: { uri: pathToFileURL(path).href } }),
          ...chunkMessages([{ name: 'a', data: truncated }], 64),
        ],
        'INVALID_ARGUMENT',
      ],
      [
        'slice out of range',
        [
          startMsg(streamed, { selection: indices([30]) }),
          ...chunkMessages([{ name: 'a', data: data.subarray(0, 1) }], 64),
        ],
        'INVALID_ARGUMENT',
      ],
      ['bad dtype', [startMsg(streamed, { outputDtype: common.DType.I16 })], 'INVALID_ARGUMENT'],
      ['unknown bundle', [startMsg(streamed, { modelBundle: 'nope@1' })], 'NOT_FOUND'],
    ];
    for (const [what, msgs, code] of cases) {
      const s = await statusOf(collect(h, msgs));
      expect(`${what}: ${s.code}`).toBe(`${what}: ${code}`);
    }
    expect(
      await metricValue(h, 'curia_preprocess_errors_total', { reason: 'INVALID_ARGUMENT' }),
    ).toBeGreaterThan(0);
  });

  it('rejects interleaved files and gaps in offsets', async () => {
    const h = await start();
    const chunk = (fileName: string, offset: number, lastChunk: boolean): Req => ({
      msg: { $case: 'chunk', value: { fileName, data: new Uint8Array(10), offset, lastChunk } },
    });
    const inter = await statusOf(collect(h, [startMsg(streamed), chunk('a', 0, false), chunk('b', 0, true)]));
    expect(inter).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(inter.details).toContain('one at a time');
    const gap = await statusOf(collect(h, [startMsg(streamed), chunk('a', 0, false), chunk('a', 20, true)]));
    expect(gap.details).toContain('chunk.offset');
  });
});

describe('PreprocessService model bundles', () => {
  it('applies a named bundle spec (clip on) and lists it in GetInfo; unknown names are NOT_FOUND', async () => {
    const ref = await reference('example_ct_sm_clip');
    const data = await sharedFile('data/totalsegmentator/example_ct_sm.nii.gz');
    if (!ref || !data) return;
    const root = await mkdtemp(join(tmpdir(), 'curia-pp-bundles-'));
    tmpDirs.push(root);
    const model = new Uint8Array(16);
    for (const version of ['1.0.0', '1.2.0']) {
      const dir = join(root, `clipper-${version}`);
      await mkdir(dir);
      await writeFile(join(dir, 'model.onnx'), model);
      await writeFile(
        join(dir, 'bundle.json'),
        JSON.stringify(manifest('clipper', version, version !== '1.0.0')),
      );
    }
    const h = await start({ CURIA_BUNDLES_DIR: root });
    const info = await h.client.getInfo({});
    expect(info.info?.models.map((m) => `${m.name}@${m.version}`).sort()).toEqual([
      'clipper@1.0.0',
      'clipper@1.2.0',
    ]);
    expect(info.info?.limits.max_upload_bytes).toBe(String(2 * 1024 ** 3));
    // "clipper" = latest (1.2.0, clip on).
    const res = await collect(h, [
      startMsg(streamed, { selection: indices(ref.picked), modelBundle: 'clipper' }),
      ...chunkMessages([{ name: 'ct.nii.gz', data }], 1024 * 1024),
    ]);
    const geo = res[0]?.msg?.$case === 'geometry' ? res[0].msg.value : undefined;
    expect(geo?.spec?.modelBundle).toBe('clipper@1.2.0');
    expect(geo?.spec?.clipBelowAir).toBe(true);
    expectParity(res, ref, 1e-3);
    const s = await statusOf(collect(h, [startMsg(streamed, { modelBundle: 'clipper@9' })]));
    expect(s.code).toBe('NOT_FOUND');
  });
});

function manifest(name: string, version: string, clip: boolean): unknown {
  return {
    schema_version: 1,
    name,
    version,
    architecture: presetArchitecture('tiny', { num_layers: 1, num_heads: 2 }),
    preprocess: {
      image_size: 512,
      clip_below_air: clip,
      normalize: 'zscore_unbiased',
      resize: 'bicubic_antialias',
    },
    outputs: [{ name: 'last_hidden_state', shape: ['batch', 1025, 96] }],
    dtype: 'f32',
    io_dtype: 'f32',
    attention: 'standard',
    sha256: '0'.repeat(64),
    model_bytes: 16,
    provenance: { source: 'random', created_at: '2026-01-01T00:00:00Z', builder_version: '0.1.0' },
    demo_weights: true,
  };
}

describe('PreprocessService cancellation', () => {
  it('stops computing slices when the client cancels after the first slice', async () => {
    const dims: [number, number, number] = [64, 64, 400];
    const nifti = int16Nifti(dims, syntheticCt(...dims));
    const h = await start();
    const ac = new AbortController();
    let got = 0;
    const s = await statusOf(
      (async () => {
        for await (const r of h.client.preprocess(
          requests([startMsg(streamed), ...chunkMessages([{ name: 'v.nii', data: nifti }], 1024 * 1024)]),
          { signal: ac.signal },
        )) {
          if (r.msg?.$case === 'slice' && ++got === 1) ac.abort();
        }
      })().catch((e: unknown) => {
        if (e instanceof Error && e.name === 'AbortError') return;
        throw e;
      }),
    );
    expect(s.code).toBe('OK');
    expect(got).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    const computed = await metricValue(h, 'curia_preprocess_slices_total');
    await new Promise((r) => setTimeout(r, 300));
    expect(await metricValue(h, 'curia_preprocess_slices_total')).toBe(computed);
    expect(computed).toBeLessThan(dims[2] / 4);
    expect(await metricValue(h, 'curia_preprocess_errors_total', { reason: 'CANCELLED' })).toBe(1);
  });
});

describe('PreprocessService slice buffers', () => {
  it('delivers every slice intact to a slow reader, although the server reuses slice and upload buffers', async () => {
    const dims: [number, number, number] = [64, 64, 48];
    // Two different studies of one size: the second upload reuses the first's pooled buffer.
    const ct = syntheticCt(...dims);
    const studies = [
      int16Nifti(dims, ct),
      int16Nifti(
        dims,
        ct.map((v, i) => v + (i % 97) - 500),
      ),
    ];
    // The default server (slices on the pool) and one computing them on its event loop.
    for (const env of [{}, { CURIA_PREPROCESS_SLICE_THREADS: '0' }] as Record<string, string>[]) {
      const h = await start(env);
      await expectIntact(h, dims, studies);
    }
  });
});

/** Streams each study (F32, then F16) slowly through `h`; every slice must equal the engine's. */
async function expectIntact(
  h: Harness,
  dims: readonly number[],
  studies: readonly Uint8Array[],
): Promise<void> {
  for (const [n, dtype] of [common.DType.F32, common.DType.F16].entries()) {
    const nifti = studies[n]!;
    const want: Float32Array[] = [];
    for await (const s of preprocessSlices(await openVolume({ kind: 'bytes', data: nifti })))
      want.push(s.pixels);
    let i = 0;
    const announced = { $case: 'streamed' as const, value: { fileCount: 1, totalBytes: nifti.length } };
    const msgs = [
      startMsg(announced, { outputDtype: dtype }),
      ...chunkMessages([{ name: 'v.nii', data: nifti }], 1 << 20),
    ];
    for await (const r of h.client.preprocess(requests(msgs))) {
      if (r.msg?.$case !== 'slice') continue;
      const px = r.msg.value.pixels!;
      const expected = dtype === common.DType.F16 ? float32ToFloat16(want[i]!) : want[i]!;
      const same = Buffer.from(px.data).equals(
        Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength),
      );
      expect(same, `study ${n} slice ${i} (${common.DType[dtype]})`).toBe(true);
      i++;
      // Read slowly at first: the 16 MiB window fills and the server's writes back up.
      if (i < 24) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(i).toBe(dims[2]);
    // The call's upload buffer went back to the pool (the second call took it and returned it).
    expect(await metricValue(h, 'curia_preprocess_upload_pool_bytes')).toBe(nifti.length);
  }
}
