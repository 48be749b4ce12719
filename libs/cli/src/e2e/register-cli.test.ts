import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  applyPoint,
  compose,
  gridSlab,
  IDENTITY,
  readDisplacementNifti,
  resampleLabels,
  volumeField,
  volumeLabels,
  voxelCount,
  writeImageNifti,
  type Grid,
  type LabelField,
  type Mat4,
} from '@curia/register';
import { sharedPathOrSkip } from '@curia/tensors';
import { openVolume, TOTALSEGMENTATOR_ORGANS } from '@curia/volume';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LocalCluster } from '../cluster/launcher.js';
import { runCuria, type CuriaRun } from './curia-bin.js';

/**
 * `curia register` as a user runs it (the committed bin, its own process) against spawned
 * Preprocess, Embed and Register processes: the shared CT and its labels moved by a known rigid
 * motion (the NIfTI affine rewritten, voxels untouched) are registered back; every output file is
 * checked (the displacement NIfTI warps the moving labels as the service did and recovers the
 * motion, Dice improves, the checkerboards are PNGs of the fixed slice size), and bad inputs are
 * named with their status.
 */
const ct = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
const seg = sharedPathOrSkip('data/totalsegmentator/example_seg.nii.gz');

/** Organs checked by value in example_seg (labels_total.json). */
const ORGANS = Object.fromEntries(TOTALSEGMENTATOR_ORGANS.map((o) => [o.name, o.value]));

const curiaRegister = (args: string[]): Promise<CuriaRun> => runCuria(['register', ...args]);

/** Rotation by `deg` about the z axis through `c`, then a translation by `t` (LPS mm). */
function motion(c: readonly number[], deg: number, t: readonly number[]): number[] {
  const a = (deg * Math.PI) / 180;
  const shift = (v: readonly number[]): number[] => [
    1,
    0,
    0,
    v[0]!,
    0,
    1,
    0,
    v[1]!,
    0,
    0,
    1,
    v[2]!,
    0,
    0,
    0,
    1,
  ];
  const rot = [Math.cos(a), -Math.sin(a), 0, 0, Math.sin(a), Math.cos(a), 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  return compose(shift(c.map((x, i) => x + t[i]!)), compose(rot, shift(c.map((x) => -x))));
}

/** Width and height of a PNG (its IHDR), after checking the signature. */
function pngSize(bytes: Uint8Array): [number, number] {
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(String.fromCharCode(...bytes.subarray(12, 16))).toBe('IHDR');
  return [dv.getUint32(16), dv.getUint32(20)];
}

const labelsOf = async (path: string): Promise<LabelField> =>
  volumeLabels(await openVolume({ kind: 'path', path }));

describe.skipIf(!ct || !seg)('curia register through the spawned cluster', () => {
  let work = '';
  let cluster: LocalCluster;
  let moving = '';
  let movingLabels = '';
  /** The known fixed → moving map (LPS mm). */
  let truth: Mat4 = IDENTITY;
  let fixedGrid: Grid;
  const target = (): string[] => ['--target', cluster.target('register')];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'curia-register-cli-'));
    const image = await volumeField(await openVolume({ kind: 'path', path: ct! }));
    const labels = await labelsOf(seg!);
    fixedGrid = image.grid;
    const centre = applyPoint(
      fixedGrid.affine,
      fixedGrid.dims.map((n) => (n - 1) / 2),
    );
    truth = motion(centre, 4, [5, -4, 3]);
    // Voxel v of the moving volume lies at truth · (fixed position of v): x_moving = truth · x_fixed.
    const movedGrid: Grid = { dims: fixedGrid.dims, affine: compose(truth, fixedGrid.affine) };
    moving = join(work, 'moving.nii.gz');
    movingLabels = join(work, 'moving_seg.nii.gz');
    await writeFile(moving, writeImageNifti({ ...image, grid: movedGrid }));
    await writeFile(movingLabels, writeImageNifti({ ...labels, grid: movedGrid }));
    cluster = await LocalCluster.start({
      ports: 'dynamic',
      only: ['preprocess', 'embed', 'register'],
      env: { CURIA_SHUTDOWN_GRACE_MS: '2000' },
    });
  }, 240_000);

  afterAll(async () => {
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  it('writes the field, warped image and labels, transform, quality and checkerboards (--json)', async () => {
    const out = join(work, 'out');
    const r = await curiaRegister([
      '--fixed',
      ct!,
      '--moving',
      moving,
      '--moving-labels',
      `organs=${movingLabels}`,
      '--fixed-labels',
      `organs=${seg!}`,
      '--inverse',
      '--out-dir',
      out,
      '--json',
      ...target(),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const json = JSON.parse(r.stdout) as {
      files: Record<string, string> & { warped: Record<string, string> };
      quality: {
        foldingPercent: number;
        logJacobianStd: number;
        initialSimilarity: number;
        finalSimilarity: number;
      };
      meanDice: Record<string, { before: number; after: number; values: number }>;
      labelOverlaps: { label: string; value: number; diceBefore: number; diceAfter: number }[];
      timingsMs: Record<string, number>;
      model: unknown;
      demoWeights: boolean;
      wallMs: number;
    };
    const names = {
      displacement: 'displacement.nii.gz',
      inverseDisplacement: 'inverse_displacement.nii.gz',
      transform: 'transform.json',
      quality: 'quality.json',
      checkerboardBefore: 'checkerboard_before.png',
      checkerboardAfter: 'checkerboard_after.png',
    };
    for (const [key, name] of Object.entries(names)) expect(json.files[key]).toBe(join(out, name));
    expect(json.files.warped).toEqual({
      moving: join(out, 'warped_moving.nii.gz'),
      organs: join(out, 'warped_organs.nii.gz'),
    });
    for (const f of [...Object.values(names), 'warped_moving.nii.gz', 'warped_organs.nii.gz']) {
      expect((await stat(join(out, f))).size, f).toBeGreaterThan(0);
    }

    // The displacement NIfTI warps the moving labels onto the fixed grid as the service did.
    const u = await readDisplacementNifti(new Uint8Array(await readFile(join(out, 'displacement.nii.gz'))));
    expect(u.grid.dims).toEqual(fixedGrid.dims);
    for (let i = 0; i < 12; i++) expect(u.grid.affine[i]).toBeCloseTo(fixedGrid.affine[i]!, 4);
    const mine = resampleLabels(await labelsOf(movingLabels), u.grid, IDENTITY, u).data;
    const service = (await labelsOf(join(out, 'warped_organs.nii.gz'))).data;
    let same = 0;
    for (let q = 0; q < mine.length; q++) if (mine[q] === service[q]) same++;
    const agreement = same / mine.length;
    expect(agreement).toBeGreaterThanOrEqual(0.99);

    // It recovers the known motion inside the organs (LPS components, x_moving = x + u(x)).
    const fixedLabels = (await labelsOf(seg!)).data;
    const n = voxelCount(u.grid);
    const [nx, ny] = u.grid.dims;
    let err = 0;
    let count = 0;
    for (let q = 0; q < n; q++) {
      if (!(Object.values(ORGANS) as number[]).includes(fixedLabels[q]!)) continue;
      const x = applyPoint(u.grid.affine, [q % nx, Math.floor(q / nx) % ny, Math.floor(q / (nx * ny))]);
      const want = applyPoint(truth, x);
      err += Math.hypot(
        x[0] + u.data[q]! - want[0],
        x[1] + u.data[n + q]! - want[1],
        x[2] + u.data[2 * n + q]! - want[2],
      );
      count++;
    }
    const epe = err / count;

    // transform.json: the affine in LPS (≈ the motion) and the same map in RAS.
    const transform = JSON.parse(await readFile(join(out, 'transform.json'), 'utf8')) as {
      direction: string;
      lps: { frame: string; matrix: number[][] };
      ras: { frame: string; matrix: number[][] };
    };
    expect(transform.direction).toBe('fixed -> moving');
    const lps = transform.lps.matrix.flat();
    const ras = transform.ras.matrix.flat();
    const flip = [-1, -1, 1, 1];
    lps.forEach((v, i) => expect(ras[i]).toBeCloseTo(v * flip[Math.floor(i / 4)]! * flip[i % 4]!, 9));
    for (let i = 0; i < 12; i++) expect(Math.abs(lps[i]! - truth[i]!)).toBeLessThan(i % 4 === 3 ? 2 : 0.03);

    // quality.json is what --json printed (without the file list), and registration helped.
    const quality = JSON.parse(await readFile(join(out, 'quality.json'), 'utf8')) as Record<string, unknown>;
    const { files: _files, wallMs: _wall, ...printed } = json;
    expect(quality).toEqual(printed);
    expect(json.model).toBeNull();
    expect(json.demoWeights).toBe(false);
    expect(json.quality.foldingPercent).toBeLessThan(0.1);
    expect(json.quality.finalSimilarity).toBeGreaterThan(json.quality.initialSimilarity);
    expect(json.meanDice.organs!.after).toBeGreaterThan(json.meanDice.organs!.before);
    const dice = Object.fromEntries(
      Object.entries(ORGANS).map(([name, value]) => {
        const o = json.labelOverlaps.find((l) => l.label === 'organs' && l.value === value)!;
        return [name, { before: Number(o.diceBefore.toFixed(3)), after: Number(o.diceAfter.toFixed(3)) }];
      }),
    );
    for (const d of Object.values(dice)) expect(d.after).toBeGreaterThan(d.before);
    expect(json.timingsMs.total).toBeGreaterThan(0);

    // The checkerboards: PNGs of the fixed middle slice's size, different before and after.
    const fixed = await openVolume({ kind: 'path', path: ct! });
    const [, rows, cols] = fixed.geometry.canonicalDims;
    const before = new Uint8Array(await readFile(join(out, 'checkerboard_before.png')));
    const after = new Uint8Array(await readFile(join(out, 'checkerboard_after.png')));
    expect(pngSize(before)).toEqual([cols, rows]);
    expect(pngSize(after)).toEqual([cols, rows]);
    expect(Buffer.from(after).equals(Buffer.from(before))).toBe(false);

    // The inverse field lives on the fixed grid too.
    const inv = await readDisplacementNifti(
      new Uint8Array(await readFile(join(out, 'inverse_displacement.nii.gz'))),
    );
    expect(inv.grid.dims).toEqual(fixedGrid.dims);
    console.log(
      `curia register (MIND, deformable): ${Math.round(json.wallMs)} ms wall, server ${json.timingsMs.total} ms; ` +
        `label agreement with the field ${(100 * agreement).toFixed(2)} %, EPE in organs ${epe.toFixed(2)} mm; ` +
        `mean Dice ${json.meanDice.organs!.before.toFixed(3)} -> ${json.meanDice.organs!.after.toFixed(3)}; ${JSON.stringify(dice)}`,
    );
    expect(epe).toBeLessThan(2);
  }, 120_000);

  it('prints a short summary; an affine run with no labels writes no label outputs', async () => {
    const out = join(work, 'affine');
    const r = await curiaRegister([
      '--fixed',
      ct!,
      '--moving',
      moving,
      '--transform',
      'affine',
      '--out-dir',
      out,
      ...target(),
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^similarity \(NCC\) -?\d\.\d{3} -> \d\.\d{3}$/m);
    expect(r.stdout).toMatch(/^folding 0\.000 %, SDlogJ \d\.\d{3}, Jacobian /m);
    expect(r.stdout).not.toContain('Dice');
    expect(r.stdout).toContain(
      `wrote displacement.nii.gz, warped_moving.nii.gz, transform.json, quality.json, checkerboard_before.png, checkerboard_after.png in ${out}`,
    );
    expect(r.stdout).toMatch(/^time \d+\.\d s \(server \d+\.\d s\)$/m);
    await expect(stat(join(out, 'inverse_displacement.nii.gz'))).rejects.toThrow();
  }, 120_000);

  it('names a bad input with its status: a missing file, a 2D image, an unpaired label map', async () => {
    const out = join(work, 'bad');
    const missing = await curiaRegister([
      '--fixed',
      ct!,
      '--moving',
      join(work, 'nope.nii.gz'),
      '--out-dir',
      out,
      ...target(),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `curia register: NOT_FOUND: --moving '${join(work, 'nope.nii.gz')}' does not exist or is not readable\n`,
    );

    const flat = join(work, 'flat.nii.gz');
    const image = await volumeField(await openVolume({ kind: 'path', path: ct! }));
    const one = gridSlab(image.grid, 15, 16);
    const plane = voxelCount(one);
    await writeFile(
      flat,
      writeImageNifti({ grid: one, channels: 1, data: image.data.slice(15 * plane, 16 * plane) }),
    );
    const twoD = await curiaRegister(['--fixed', flat, '--moving', moving, '--out-dir', out, ...target()]);
    expect(twoD.code).toBe(1);
    expect(twoD.stderr).toMatch(/^curia register: INVALID_ARGUMENT: .*'fixed'.*not 2D images/);

    const unpaired = await curiaRegister([
      '--fixed',
      ct!,
      '--moving',
      moving,
      '--fixed-labels',
      seg!,
      '--out-dir',
      out,
      ...target(),
    ]);
    expect(unpaired.code).toBe(2);
    expect(unpaired.stderr).toMatch(
      /^curia register: INVALID_ARGUMENT: --fixed-labels '.*example_seg\.nii\.gz' is named 'example_seg', but no --moving-labels has that name/,
    );
    await expect(stat(out)).rejects.toThrow();
  }, 60_000);
});
