import { CuriaError } from '@curia/errors';
import { describe, expect, it } from 'vitest';

import { ConcurrencyGate } from './concurrency-gate.js';

describe('ConcurrencyGate', () => {
  it('admits up to max, sheds the next with RESOURCE_EXHAUSTED and a retry hint, and reopens on release', () => {
    const seen: number[] = [];
    let shed = 0;
    const gate = new ConcurrencyGate({
      max: 2,
      retryAfterMs: 1500,
      setting: 'CURIA_X_MAX_CONCURRENT',
      what: 'this x replica',
      onChange: (n) => seen.push(n),
      onShed: () => shed++,
    });
    const a = gate.admit();
    gate.admit();
    let err: unknown;
    try {
      gate.admit();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CuriaError);
    expect((err as CuriaError).code).toBe('RESOURCE_EXHAUSTED');
    expect((err as CuriaError).message).toBe(
      'this x replica is running 2 calls (CURIA_X_MAX_CONCURRENT); retry after 1500ms',
    );
    expect((err as CuriaError).retryAfterMs).toBe(1500);
    expect(shed).toBe(1);
    a();
    a(); // a second release is a no-op
    expect(gate.inFlight).toBe(1);
    gate.admit();
    expect(seen).toEqual([1, 2, 1, 2]);
  });
});
