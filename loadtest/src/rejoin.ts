import { runLoad, type CallFn } from './generator.js';

/**
 * Offers light closed-loop load with `call` until `peer` completes a call, so a fault phase
 * starts only once a restarted replica is back in the client's balancing set (grpc-js reconnects
 * it on its own backoff, up to `grpc.max_reconnect_backoff_ms`). Resolves with the time it took,
 * ms; rejects after `timeoutMs`.
 */
export async function untilServedBy(call: CallFn, peer: string, timeoutMs = 15_000): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    const r = await runLoad(call, {
      mode: { kind: 'closed', concurrency: 2 },
      durationMs: 250,
      maxRequests: 50,
      deadlineMs: 30_000,
    });
    if ((r.okByPeer[peer] ?? 0) > 0) return performance.now() - t0;
  }
  throw new Error(`${peer} took no call within ${timeoutMs} ms of its restart`);
}
