/**
 * Preprocessing benchmark: slices/s of the engine on the shared CT (NIfTI and DICOM) and on a
 * generated 512x512x300 int16 CT, memory growth while streaming, a same-run baseline (weights
 * recomputed per slice, fresh buffers) and, when a Python with torch is available, the
 * torch (2 threads) resize + z-score rate on the same slices, compared with ours on a 2-thread
 * slice pool (and on one thread).
 *
 * Run after `npm run build`: node libs/volume/dist/bench/preprocess-bench.js
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { sharedDir } from '@curia/tensors';

import { zscoreInto } from '../preprocess/normalize.js';
import { preprocessSlices, preprocessSlicesOnPool } from '../preprocess/preprocess.js';
import { SlicePool, type PooledSlice } from '../preprocess/slice-pool.js';
import { CURIA_DEFAULT_PREPROCESS_SPEC } from '../preprocess/spec.js';
import { computeAxisWeights, resizeBicubicAa, ResizeScratch } from '../preprocess/resize.js';
import { openVolume, type Volume, type VolumeSource } from '../volume.js';
import { int16Bytes, writeNifti } from '../nifti/nifti-writer.js';

const MiB = 1024 ** 2;

async function engineRate(volume: Volume, reps: number): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  for (let r = 0; r < reps; r++) {
    for await (const s of preprocessSlices(volume)) if (s.pixels.length > 0) n++;
  }
  return (n * 1000) / (performance.now() - t0);
}

/** The whole engine (read, decode, resize, z-score) on a slice pool. */
async function poolEngineRate(volume: Volume, pool: SlicePool): Promise<number> {
  const t0 = performance.now();
  let n = 0;
  for await (const s of preprocessSlicesOnPool(volume, pool)) {
    if (s.data.length > 0) n++;
    s.release();
  }
  return (n * 1000) / (performance.now() - t0);
}

/** Resize + z-score only, on slices already in memory (what the torch script measures). */
function resizeRate(slices: Float64Array[], h: number, w: number, reps: number, cached: boolean): number {
  const out = new Float64Array(512 * 512);
  const px = new Float32Array(512 * 512);
  const scratch = new ResizeScratch();
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    for (const s of slices) {
      if (!cached) {
        // Baseline: what an implementation without the weight cache and buffer reuse pays.
        computeAxisWeights(w, 512);
        computeAxisWeights(h, 512);
        resizeBicubicAa(s, h, w, 512, 512, new Float64Array(512 * 512), new ResizeScratch());
        zscoreInto(out, out.length, new Float32Array(512 * 512), 1e-6);
      } else {
        resizeBicubicAa(s, h, w, 512, 512, out, scratch);
        zscoreInto(out, out.length, px, 1e-6);
      }
    }
  }
  return (slices.length * reps * 1000) / (performance.now() - t0);
}

/**
 * Resize + z-score of the same slices on a {@link SlicePool} (raw slices in, float32 out), with
 * 2 slices per thread in flight: ours at the thread count torch is given.
 */
async function poolRate(
  slices: Float64Array[],
  h: number,
  w: number,
  reps: number,
  pool: SlicePool,
): Promise<number> {
  const spec = CURIA_DEFAULT_PREPROCESS_SPEC;
  const freeRaw: Float64Array[] = [];
  const freeOut: ArrayBuffer[] = [];
  const inflight: Promise<PooledSlice>[] = [];
  const t0 = performance.now();
  for (let r = 0; r < reps; r++) {
    for (const s of slices) {
      if (inflight.length >= 2 * pool.size) {
        const done = await inflight.shift()!;
        if (done.input.kind === 'raw') freeRaw.push(done.input.raw);
        freeOut.push(done.out.buffer);
      }
      const raw = freeRaw.pop() ?? new Float64Array(h * w);
      raw.set(s);
      const buffer = freeOut.pop() ?? new ArrayBuffer(512 * 512 * 4);
      inflight.push(pool.process({ kind: 'raw', raw }, h, w, spec, { buffer, byteOffset: 0, dtype: 'F32' }));
    }
  }
  await Promise.all(inflight);
  return (slices.length * reps * 1000) / (performance.now() - t0);
}

function torchPython(): string | null {
  for (const py of [process.env.CURIA_TORCH_PYTHON, 'python3', '/usr/bin/python3']) {
    if (!py) continue;
    try {
      execFileSync(py, ['-c', 'import torch, numpy'], { stdio: 'ignore' });
      return py;
    } catch {
      // try the next interpreter
    }
  }
  return null;
}

interface TorchResult {
  torch: string;
  threads: number;
  per_slice: number;
  batched16: number;
}

async function torchRate(
  slices: Float64Array[],
  h: number,
  w: number,
  reps: number,
  ours: Float32Array,
): Promise<(TorchResult & { maxDiff: number }) | null> {
  const py = torchPython();
  if (!py) return null;
  const dir = await mkdtemp(join(tmpdir(), 'curia-bench-'));
  try {
    const input = new Float32Array(slices.length * h * w);
    slices.forEach((s, i) => input.set(s, i * h * w));
    const inPath = join(dir, 'in.f32');
    const outPath = join(dir, 'out.f32');
    await writeFile(inPath, new Uint8Array(input.buffer));
    const script = fileURLToPath(new URL('../../src/bench/torch_preprocess_bench.py', import.meta.url));
    const line = execFileSync(
      py,
      [script, inPath, String(slices.length), String(h), String(w), outPath, String(reps)],
      {
        encoding: 'utf8',
      },
    );
    const res = JSON.parse(line.trim().split('\n').pop()!) as TorchResult;
    const b = await readFile(outPath);
    const ref = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ref[i]! - ours[i]!));
    return { ...res, maxDiff };
  } finally {
    await rm(dir, { recursive: true });
  }
}

function syntheticCt(nx: number, ny: number, nz: number): Int16Array {
  const v = new Int16Array(nx * ny * nz);
  let seed = 12345;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const dx = (x - nx / 2) / (nx * 0.4);
        const dy = (y - ny / 2) / (ny * 0.3);
        const inside = dx * dx + dy * dy < 1;
        const bone = inside && dx * dx + dy * dy < 0.05 + 0.02 * Math.sin(z / 10);
        v[x + nx * (y + ny * z)] = (bone ? 700 : inside ? 40 : -1000) + ((seed >> 8) % 40) - 20;
      }
    }
  }
  return v;
}

async function bench(name: string, volume: Volume, reps: number, pool: SlicePool): Promise<void> {
  const [, h, w] = volume.geometry.canonicalDims;
  const engine = await engineRate(volume, reps);
  const slices: Float64Array[] = [];
  for (let k = 0; k < volume.sliceCount; k++)
    slices.push(Float64Array.from(await volume.readCanonicalSlice(k)));
  const baseline = resizeRate(slices, h, w, reps, false);
  const cached = resizeRate(slices, h, w, reps, true);
  await poolRate(slices, h, w, 1, pool); // warm-up (thread JIT)
  const pooled = await poolRate(slices, h, w, reps, pool);
  console.log(`\n== ${name}: ${volume.sliceCount} slices of ${h}x${w} -> 512x512`);
  console.log(`engine (read+resize+zscore, streaming): ${engine.toFixed(1)} slices/s`);
  console.log(
    `resize+zscore only: ${cached.toFixed(1)} slices/s; baseline (uncached weights, fresh buffers): ${baseline.toFixed(1)} slices/s; ratio ${(cached / baseline).toFixed(2)}x`,
  );
  console.log(`resize+zscore on the slice pool (${pool.size} threads): ${pooled.toFixed(1)} slices/s`);
  let first: Float32Array | null = null;
  for await (const s of preprocessSlices(volume, { selection: { kind: 'indices', indices: [0] } }))
    first = s.pixels;
  const t = await torchRate(slices, h, w, reps, first!);
  if (t) {
    console.log(
      `torch ${t.torch} (${t.threads} threads): ${t.per_slice.toFixed(1)} slices/s per slice, ${t.batched16.toFixed(1)} slices/s batched x16; max |ours - torch| on slice 0 = ${t.maxDiff.toExponential(2)}`,
    );
    const best = Math.max(t.per_slice, t.batched16);
    console.log(
      `ours/torch (torch's better mode): ${(pooled / best).toFixed(2)} with ${pool.size} threads each [target >= 1.0]; ours on 1 thread ${(cached / best).toFixed(2)}`,
    );
  } else {
    console.log('torch: not available (no python3 with torch + numpy); ratio skipped');
  }
}

/** Threads of the torch reference (torch_preprocess_bench.py) and of our pool compared with it. */
const THREADS = 2;

async function main(): Promise<void> {
  const pool = new SlicePool(THREADS);
  try {
    await run(pool);
  } finally {
    await pool.close();
  }
}

async function run(pool: SlicePool): Promise<void> {
  const shared = sharedDir();
  if (shared) {
    const ct: VolumeSource = {
      kind: 'path',
      path: join(shared, 'data/totalsegmentator/example_ct_sm.nii.gz'),
    };
    await bench('shared example_ct_sm.nii.gz', await openVolume(ct), 5, pool);
    const dir = join(shared, 'data/totalsegmentator/example_ct_dicom');
    const files = await Promise.all(
      (await readdir(dir)).map(async (name) => ({ name, data: await readFile(join(dir, name)) })),
    );
    const dcm = await openVolume({ kind: 'files', files });
    const t0 = performance.now();
    let n = 0;
    for await (const s of preprocessSlices(dcm)) if (s.pixels.length) n++;
    const oneThread = (n * 1000) / (performance.now() - t0);
    await poolEngineRate(dcm, pool); // warm-up (codec start-up on the threads)
    const pooledRate = await poolEngineRate(dcm, pool);
    console.log(
      `\n== shared example_ct_dicom (JPEG 2000, decode included): ${oneThread.toFixed(1)} slices/s in this thread; ${pooledRate.toFixed(1)} slices/s decoding on the slice pool (${pool.size} threads, x${(pooledRate / oneThread).toFixed(2)})`,
    );
    await bench('shared example_ct_dicom (decode excluded for resize rows)', dcm, 2, pool);
  } else {
    console.log('shared/ not found: skipping the shared CT');
  }

  const [nx, ny, nz] = [512, 512, 300];
  const values = syntheticCt(nx, ny, nz);
  const bytes = writeNifti({
    dims: [nx, ny, nz],
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(values),
    affine: [-0.8, 0, 0, 200, 0, -0.8, 0, 200, 0, 0, 1.5, -300, 0, 0, 0, 1],
  });
  const volumeBytes = nx * ny * nz * 2;
  global.gc?.();
  const before = process.memoryUsage();
  const vol = await openVolume({ kind: 'bytes', data: bytes });
  const t0 = performance.now();
  let peak = 0;
  let n = 0;
  for await (const s of preprocessSlices(vol)) {
    if (s.pixels.length) n++;
    if (n % 10 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  }
  const rate = (n * 1000) / (performance.now() - t0);
  console.log(
    `\n== generated CT 512x512x300 int16 (${(volumeBytes / MiB).toFixed(0)} MiB voxels, uncompressed NIfTI in memory)`,
  );
  console.log(`engine streaming all slices: ${rate.toFixed(1)} slices/s`);
  console.log(
    `RSS before open ${(before.rss / MiB).toFixed(0)} MiB (input buffer already held), peak while streaming ${(peak / MiB).toFixed(0)} MiB: growth ${((peak - before.rss) / MiB).toFixed(0)} MiB (a float32 copy of the volume would be ${((volumeBytes * 2) / MiB).toFixed(0)} MiB)`,
  );
  await bench(
    'generated CT 512x512x300 (60 slices subset for the resize rows)',
    {
      ...vol,
      geometry: vol.geometry,
      info: vol.info,
      voxelType: vol.voxelType,
      sliceCount: 60,
      readCanonicalSlice: (k, out) => vol.readCanonicalSlice(k, out),
    },
    1,
    pool,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
