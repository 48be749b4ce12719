import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { decodeItem, encodeItem, packFiles, unpackFiles, VersionedStore } from '@curia/heads';

import { SEGMENT_HEAD_CODEC, type SegmentHeadRecord } from './head-record.js';

const dirs: string[] = [];
afterEach(async () => Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true }))));

const record = (key?: string): SegmentHeadRecord => ({
  meta: {
    format: 'curia-segment-head/1',
    name: 'organs',
    version: '',
    kind: 'linear',
    classes: [{ value: 5, name: 'liver' }],
    dim: 3,
    imageSize: 512,
    patchSize: 16,
    model: 'demo@1',
    modelSha256: 'ab',
    demo: true,
    description: '',
    smoothAcrossSlices: false,
    createdAt: '2026-12-05T00:00:00Z',
    ...(key ? { idempotencyKey: key } : {}),
    fit: {
      cvDice: { liver: 0.9 },
      slices: 5,
      tokens: 5120,
      folds: 5,
      l2: 1e-3,
      maxIterations: 200,
      timingsMs: {},
    },
  },
  weights: {
    kind: 'linear',
    dim: 3,
    classes: [{ value: 5, name: 'liver' }],
    center: Float32Array.of(1, 2, 3),
    kernel: Float32Array.of(1, 2, 3, 4, 5, 6),
    bias: Float32Array.of(-1, 1),
  },
});

describe('segmentation heads in a VersionedStore', () => {
  it('stores versions 1, 2, … that survive a reopen, finds an idempotency key, and skips a broken version', async () => {
    const root = await mkdtemp(join(tmpdir(), 'curia-seg-store-'));
    dirs.push(root);
    const store = await VersionedStore.open(root, SEGMENT_HEAD_CODEC);
    expect((await store.add('organs', record())).version).toBe('1');
    const second = await store.add('organs', record('key-1'));
    expect(second.version).toBe('2');
    expect(second.item.meta.version).toBe('2');
    await writeFile(join(root, 'organs', '1', 'segment-head.json'), '{"format": "other"}');
    const skipped: string[] = [];
    const again = await VersionedStore.open(root, SEGMENT_HEAD_CODEC, (dir) => skipped.push(dir));
    // Version 1 was the promoted one (a name's first version); its alias is skipped with it, and
    // the name falls back to its latest readable version.
    expect(skipped).toEqual([join(root, 'organs', '1'), join(root, 'organs', '.alias.json')]);
    const got = again.get('organs');
    expect(got.version).toBe('2');
    expect(Array.from(got.item.weights.kernel)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(again.byIdempotencyKey('key-1')?.version).toBe('2');
    expect(() => again.get('organs', '7', 'segmentation head')).toThrow(
      /segmentation head 'organs' has no version '7'/,
    );
  });
});

describe('segmentation heads in the registry byte form', () => {
  it('round-trips through encodeItem/packFiles and back (what the PostgreSQL registry stores)', async () => {
    const files = await encodeItem(SEGMENT_HEAD_CODEC, record('key-2'));
    expect([...files.keys()].sort()).toEqual(['segment-head.json', 'weights.safetensors']);
    const back = await decodeItem(SEGMENT_HEAD_CODEC, unpackFiles(packFiles(files)), 'organs', '4');
    expect(back.meta).toMatchObject({ name: 'organs', version: '4', idempotencyKey: 'key-2' });
    expect(Array.from(back.weights.kernel)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(back.weights.bias)).toEqual([-1, 1]);
  });
});
