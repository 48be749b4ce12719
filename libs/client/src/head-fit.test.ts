import { describe, expect, it } from 'vitest';

import { heads } from '@curia/proto';

import { headFitRequests } from './head-fit.js';

describe('headFitRequests', () => {
  it('sends the start (proto defaults filled in), then the samples in batches', async () => {
    const samples = Array.from({ length: 5 }, (_, i) => ({
      features: undefined,
      label: { $case: 'classIndex' as const, value: i % 2 },
    }));
    const msgs: heads.FitRequest[] = [];
    for await (const m of headFitRequests({ head: 'h', labelNames: ['a', 'b'] }, samples, 2)) msgs.push(m);
    expect(msgs.map((m) => m.msg?.$case)).toEqual(['start', 'samples', 'samples', 'samples']);
    expect(msgs[0]!.msg).toEqual({
      $case: 'start',
      value: heads.FitStart.fromPartial({ head: 'h', labelNames: ['a', 'b'] }),
    });
    const sent = msgs.slice(1).map((m) => (m.msg?.$case === 'samples' ? m.msg.value.samples : []));
    expect(sent.map((s) => s.length)).toEqual([2, 2, 1]);
    expect(sent.flat()).toEqual(samples);
  });
});
