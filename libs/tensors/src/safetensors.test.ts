import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import {
  SafetensorsFile,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
} from './safetensors.js';
import { sharedPathOrSkip } from './shared-data.js';
import { TensorFormatError, fromFloat32, toFloat32 } from './tensor.js';

describe('safetensors', () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('round-trips tensors and metadata through a file with selective reads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curia-st-'));
    dirs.push(dir);
    const a = fromFloat32(Float32Array.from([1, -2.5, 3, 4, 5, 6]), [2, 3]);
    const b = {
      dtype: 'I16' as const,
      shape: [3],
      data: new Uint8Array(Int16Array.from([-1024, 0, 7]).buffer),
    };
    await writeSafetensors(
      join(dir, 'x.safetensors'),
      [
        ['a', a],
        ['b', b],
      ],
      { note: 'hi' },
    );
    const f = await SafetensorsFile.open(join(dir, 'x.safetensors'));
    expect(f.names()).toEqual(['a', 'b']);
    expect(f.header.metadata).toEqual({ note: 'hi' });
    expect(f.header.dataOffset % 8).toBe(0);
    expect([...toFloat32(await f.read('b'))]).toEqual([-1024, 0, 7]);
    const all = await readSafetensors(join(dir, 'x.safetensors'));
    expect([...toFloat32(all.tensors.get('a')!)]).toEqual([1, -2.5, 3, 4, 5, 6]);
  });

  it('writes a tensor given in chunks (more than one writev batch) without joining them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curia-st-'));
    dirs.push(dir);
    const rows = Array.from({ length: 300 }, (_, r) => Float32Array.from([r, -r, r / 2]));
    const chunks = rows.map((v) => new Uint8Array(v.buffer));
    const path = join(dir, 'chunked.safetensors');
    await writeSafetensors(path, [['rows', { dtype: 'F32', shape: [300, 3], chunks }]], { layout: 'rows' });
    const back = await readSafetensors(path);
    expect(back.metadata).toEqual({ layout: 'rows' });
    expect(back.tensors.get('rows')!.shape).toEqual([300, 3]);
    expect([...toFloat32(back.tensors.get('rows')!)]).toEqual(rows.flatMap((v) => [...v]));
    expect(
      encodeSafetensors([['rows', { dtype: 'F32', shape: [300, 3], chunks }]], { layout: 'rows' }),
    ).toEqual(await readFile(path));
    await expect(
      writeSafetensors(path, [['rows', { dtype: 'F32', shape: [301, 3], chunks }]]),
    ).rejects.toThrow(TensorFormatError);
  });

  it('converts F16 within half-precision rounding', () => {
    const values = Float32Array.from([0, 1, -2, 0.1, 65504, 1e-5, -3.14159]);
    const back = toFloat32(fromFloat32(values, [values.length], 'F16'));
    values.forEach((v, i) => expect(Math.abs(back[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-3 + 1e-7));
  });

  it('rejects truncated and inconsistent buffers', () => {
    const buf = encodeSafetensors([['a', fromFloat32(new Float32Array(4), [4])]]);
    expect(() => decodeSafetensors(buf.subarray(0, 5))).toThrow(TensorFormatError);
    expect(() => decodeSafetensors(buf.subarray(0, buf.length - 1))).toThrow(/inconsistent offsets/);
    const bad = Buffer.from(buf);
    bad.writeBigUInt64LE(1n << 40n);
    expect(() => decodeSafetensors(bad)).toThrow(/exceeds/);
  });

  it('reads the shared reference tensors', async () => {
    const path = sharedPathOrSkip('reference/dinov2/tiny-mlp/vectors.safetensors');
    if (!path) return;
    const { tensors } = await readSafetensors(path);
    expect(tensors.get('last_hidden_state')?.shape).toEqual([2, 1025, 96]);
    expect(tensors.get('pixel_values')?.dtype).toBe('F32');
  });
});

describe('toFloat32 on unaligned views', () => {
  it('copies exactly the tensor bytes, also from a pooled Node Buffer', () => {
    const values = Float32Array.from([1.5, -2, 3.25]);
    const pooled = Buffer.alloc(64);
    pooled.set(new Uint8Array(values.buffer), 1);
    const view = pooled.subarray(1, 13);
    expect([...toFloat32({ dtype: 'F32', shape: [3], data: view })]).toEqual([1.5, -2, 3.25]);
  });
});
