import { decodeItem, encodeItem, fitHead, packFiles, unpackFiles } from '@curia/heads';
import { describe, expect, it } from 'vitest';

import { HEAD_CODEC, type StoredHead } from './store.js';

describe('HEAD_CODEC in the registry byte form', () => {
  it('round-trips a fitted head and its service facts through bytes (what the PostgreSQL registry stores)', async () => {
    const rows = 40;
    const data = Float32Array.from(
      { length: rows * 3 },
      (_, i) => ((i * 7919) % 97) / 97 - (i % 2 ? 0.3 : 0),
    );
    const y = Array.from({ length: rows }, (_, r) => (data[r * 3]! > 0.2 ? 1 : 0));
    const head = await fitHead('logistic', { data, rows, cols: 3 }, y, { seed: 1, folds: 0 });
    const stored: StoredHead = {
      head,
      service: { model: 'demo@1', description: 'd', unit: '', dataset: 'x', demo: true, idempotencyKey: 'k' },
    };
    const files = await encodeItem(HEAD_CODEC, HEAD_CODEC.withVersion(stored, 'liver', '3'));
    expect([...files.keys()]).toContain('service.json');
    const back = await decodeItem(HEAD_CODEC, unpackFiles(packFiles(files)), 'liver', '3');
    expect(back.head.meta).toMatchObject({ name: 'liver', version: '3', kind: head.meta.kind });
    expect(back.service).toMatchObject({ model: 'demo@1', dataset: 'x', idempotencyKey: 'k' });
    const input = () => ({
      slices: 2,
      hidden: 3,
      blocks: [{ data: Float32Array.from(data.subarray(0, 6)), tokensPerSlice: 1 }],
    });
    const a = await head.run(input());
    const b = await back.head.run(input());
    expect(Array.from(b.probabilities!)).toEqual(Array.from(a.probabilities!));
  });
});
