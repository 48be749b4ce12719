import { describe, expect, it } from 'vitest';

import { AsyncQueue } from './async-queue.js';

async function drain<T>(q: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of q) out.push(x);
  return out;
}

describe('AsyncQueue', () => {
  it('delivers items pushed before and after the consumer waits, then ends on close', async () => {
    const q = new AsyncQueue<number>();
    q.push(1);
    const done = drain(q);
    await new Promise((r) => setTimeout(r, 5));
    q.push(2);
    q.push(3);
    expect(q.length).toBe(1);
    q.close();
    q.push(4); // ignored after close
    expect(await done).toEqual([1, 2, 3]);
  });

  it('fail() rejects a waiting consumer and every later read', async () => {
    const q = new AsyncQueue<number>();
    const done = drain(q);
    q.fail(new Error('boom'));
    await expect(done).rejects.toThrow('boom');
    await expect(q[Symbol.asyncIterator]().next()).rejects.toThrow('boom');
  });
});
