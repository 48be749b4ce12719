import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Command } from 'commander';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { generatePhantom } from '@curia/phantom';
import { sharedPathOrSkip } from '@curia/tensors';
import { openVolume } from '@curia/volume';

import { labelTablePath, phantomAction, registerPhantom } from './phantom.js';

const dirs: string[] = [];
afterEach(async () => {
  process.exitCode = undefined;
  vi.restoreAllMocks();
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'curia-cli-phantom-'));
  dirs.push(d);
  return d;
}

function colouredPixels(png: PNG): number {
  let n = 0;
  for (let o = 0; o < png.data.length; o += 4)
    if (png.data[o] !== png.data[o + 1] || png.data[o + 1] !== png.data[o + 2]) n++;
  return n;
}

describe('curia phantom', () => {
  it('writes the phantom, its label map and table, and previews; one line per file', async () => {
    const d = await tmp();
    const lines: string[] = [];
    const out = join(d, 'phantom.nii.gz');
    const labels = join(d, 'seg', 'labels.nii');
    const pngDir = join(d, 'png');
    await phantomAction(
      {
        out,
        labels,
        size: '64,48,10',
        spacing: '6.4,6.4,16',
        seed: '3',
        noise: '10',
        png: pngDir,
        pngCount: '3',
      },
      (l) => lines.push(l),
    );
    expect(lines).toEqual([
      `wrote ${out}`,
      `wrote ${labels}`,
      `wrote ${join(d, 'seg', 'labels.json')}`,
      ...['001', '005', '008'].map((k) => `wrote ${join(pngDir, `axial_${k}.png`)}`),
      `wrote ${join(pngDir, 'index.html')}`,
    ]);
    const html = await readFile(join(pngDir, 'index.html'), 'utf8');
    expect(html).toContain('src="axial_005.png"');
    expect(html).toMatch(/5 liver/);
    const img = await openVolume({ kind: 'path', path: out });
    const seg = await openVolume({ kind: 'path', path: labels });
    expect(img.info.format === 'nifti' && img.info.compressed).toBe(true);
    expect(seg.info.format === 'nifti' && seg.info.compressed).toBe(false);
    expect(img.geometry.inputDims).toEqual([64, 48, 10]);
    expect(img.geometry.inputAxcodes).toBe('LPS');
    // Same bytes as the library call with the same options.
    const p = generatePhantom({ size: [64, 48, 10], spacing: [6.4, 6.4, 16], seed: 3, noiseSigma: 10 });
    const got = await img.readCanonicalSlice(5);
    expect(Array.from(got)).toEqual(Array.from(p.data.subarray(5 * 64 * 48, 6 * 64 * 48)));
    const table = JSON.parse(await readFile(join(d, 'seg', 'labels.json'), 'utf8')) as Record<string, string>;
    expect(table['5']).toBe('liver');
    const png = PNG.sync.read(await readFile(join(pngDir, 'axial_005.png')));
    expect([png.width, png.height]).toEqual([64, 48]);
    expect(colouredPixels(png)).toBeGreaterThan(50);
  });

  it('previews an existing volume with --from and an overlay from --labels', async () => {
    const d = await tmp();
    const out = join(d, 'p.nii');
    const labels = join(d, 'l.nii.gz');
    await phantomAction({ out, labels, size: '40,32,8', orientation: 'ras' }, () => undefined);
    const lines: string[] = [];
    await phantomAction({ from: out, labels, png: join(d, 'prev'), pngCount: '2' }, (l) => lines.push(l));
    expect(lines).toHaveLength(3);
    const files = (await readdir(join(d, 'prev'))).sort();
    expect(files).toEqual(['axial_002.png', 'axial_006.png', 'index.html']);
    // Names come from the label table written next to the label map.
    expect(await readFile(join(d, 'prev', 'index.html'), 'utf8')).toMatch(/1 spleen/);
    const png = PNG.sync.read(await readFile(join(d, 'prev', 'axial_006.png')));
    expect([png.width, png.height]).toEqual([40, 32]);
    expect(colouredPixels(png)).toBeGreaterThan(20);
  });

  it('previews the shared TotalSegmentator CT with its segmentation', async () => {
    const ct = sharedPathOrSkip('data/totalsegmentator/example_ct_sm.nii.gz');
    const seg = sharedPathOrSkip('data/totalsegmentator/example_seg.nii.gz');
    const names = sharedPathOrSkip('data/totalsegmentator/labels_total.json');
    if (!ct || !seg || !names) return;
    const d = await tmp();
    await phantomAction({ from: ct, labels: seg, labelNames: names, png: d, pngCount: '2' }, () => undefined);
    expect(await readFile(join(d, 'index.html'), 'utf8')).toMatch(/5 liver/);
    const png = PNG.sync.read(await readFile(join(d, 'axial_022.png')));
    // Canonical slices: rows -> P (101 voxels), cols -> L (122 voxels).
    expect([png.width, png.height]).toEqual([122, 101]);
    expect(colouredPixels(png)).toBeGreaterThan(100);
  });

  it('moves the phantom in world space with --shift (a registration pair with a known motion)', async () => {
    const d = await tmp();
    await phantomAction({ out: join(d, 'a.nii.gz'), size: '40,32,8' }, () => undefined);
    await phantomAction({ out: join(d, 'b.nii.gz'), size: '40,32,8', shift: '6,-4.5,3' }, () => undefined);
    const a = (await openVolume({ kind: 'path', path: join(d, 'a.nii.gz') })).geometry.inputAffine;
    const b = (await openVolume({ kind: 'path', path: join(d, 'b.nii.gz') })).geometry.inputAffine;
    // The same voxels, the translation column moved by the shift (RAS mm).
    for (let q = 0; q < 16; q++) {
      const want = q === 3 ? 6 : q === 7 ? -4.5 : q === 11 ? 3 : 0;
      expect(b[q]! - a[q]!).toBeCloseTo(want, 4);
    }
    await expect(phantomAction({ out: join(d, 'c.nii'), shift: '1,2' }, () => undefined)).rejects.toThrow(
      /--shift must be 3 comma-separated numbers/,
    );
  });

  it('maps a labels path to its table path', () => {
    expect(labelTablePath('a/labels.nii.gz')).toBe('a/labels.json');
    expect(labelTablePath('seg.NII')).toBe('seg.json');
    expect(labelTablePath('seg.bin')).toBe('seg.bin.json');
  });

  it('rejects bad arguments with a one-line reason and exit status 2', async () => {
    const d = await tmp();
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      stderr.push(String(s));
      return true;
    });
    const cases: [string[], RegExp][] = [
      [['--out', join(d, 'x.nii'), '--size', '64,64'], /--size must be 3 comma-separated positive integers/],
      [['--out', join(d, 'x.nii'), '--spacing', '1,0,1'], /--spacing must be 3/],
      [['--out', join(d, 'x.nii'), '--seed', '-4'], /--seed must be an integer/],
      [['--out', join(d, 'x.nii'), '--noise', 'loud'], /--noise must be a number/],
      [['--out', join(d, 'x.nii'), '--orientation', 'XYZ'], /--orientation must be LPS or RAS/],
      [['--png', d, '--window', '40'], /--window must be 'level,width'/],
      [['--png', d, '--png-count', '0'], /--png-count must be an integer in 1\.\.1000/],
      [[], /nothing to write/],
      [['--from', join(d, 'missing.nii'), '--png', d], /--from .* does not exist/],
      [['--from', d, '--png', d, '--size', '8,8,8'], /--size only applies when generating/],
      [['--png', d, '--label-names', join(d, 'n.json')], /--label-names only applies with --from/],
      [['--out', join(d, 'x.nii'), '--size', '2048,2048,2048'], /above the limit/],
    ];
    for (const [args, reason] of cases) {
      stderr.length = 0;
      process.exitCode = undefined;
      const program = new Command().exitOverride();
      registerPhantom(program);
      await program.parseAsync(['phantom', ...args], { from: 'user' });
      expect(process.exitCode, args.join(' ')).toBe(2);
      expect(stderr).toHaveLength(1);
      expect(stderr[0]).toMatch(/^curia phantom: [^\n]+\n$/);
      expect(stderr[0]).toMatch(reason);
    }
    expect(await readdir(d)).toEqual([]);
  });
});
