import { gzipSync } from 'node:zlib';

import { ClientError, Status } from 'nice-grpc';
import { afterEach, describe, expect, it } from 'vitest';

import { RETRY_AFTER_TRAILER } from '@curia/kit';
import { common, type preprocess } from '@curia/proto';

import { chunkMessages, requestStream, startPreprocessServer, type Harness } from './testing/harness.js';
import { int16Nifti, syntheticCt } from './testing/nifti.js';
import { niftiGzipBomb, zeroRleFrame } from '@curia/volume/testing';

const harnesses: Harness[] = [];
afterEach(async () => {
  await Promise.all(harnesses.splice(0).map((h) => h.close()));
});

/** The chart gives Preprocess 3 GiB; the budget is CURIA_MEMORY_BUDGET_FRACTION 0.6 of it. */
const CHART_BUDGET = Math.floor(0.6 * 3 * 1024 ** 3);

async function start(env: Record<string, string>): Promise<Harness> {
  const h = await startPreprocessServer(env);
  harnesses.push(h);
  return h;
}

type Req = preprocess.PreprocessRequest;

function startMsg(selection?: common.SliceSelection): Req {
  return {
    msg: {
      $case: 'start',
      value: {
        header: {
          studyId: 'budget-1',
          format: common.VolumeFormat.AUTO,
          seriesInstanceUid: '',
          volumeIndex: 0,
        },
        source: { $case: 'streamed', value: { fileCount: 0, totalBytes: 0 } },
        options: { modelBundle: '', outputDtype: common.DType.F32, ...(selection ? { selection } : {}) },
      },
    },
  };
}

/**
 * A ~2 MB `.nii.gz` whose header declares 1024×1024×1000 int16 and whose stream really inflates
 * to those 2 GB of zeros (gzip members of 16 MiB of zeros, concatenated after the header's).
 */
function gzipBomb(): Uint8Array {
  return niftiGzipBomb([1024, 1024, 1000], 'int16');
}

function files(data: Uint8Array): Req[] {
  return [startMsg(), ...chunkMessages([{ name: 'v.nii.gz', data }], 1 << 20)];
}

async function run(
  h: Harness,
  msgs: Iterable<Req>,
): Promise<{ code: string; details: string; ms: number; slices: number; retryAfter?: string }> {
  const t0 = performance.now();
  let slices = 0;
  let retryAfter: string | undefined;
  try {
    for await (const r of h.client.preprocess(requestStream(msgs), {
      onTrailer: (t) => (retryAfter = t.get(RETRY_AFTER_TRAILER)),
    })) {
      if (r.msg?.$case === 'slice') slices++;
    }
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
    return { code: Status[e.code], details: e.details, ms: performance.now() - t0, slices, retryAfter };
  }
  return { code: 'OK', details: '', ms: performance.now() - t0, slices };
}

/** Peak RSS of this process (which hosts the server) while `fn` runs, sampled every 2 ms. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number; before: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, process.memoryUsage().rss), before };
  } finally {
    clearInterval(timer);
  }
}

const MiB = 1024 ** 2;

describe('PreprocessService memory budget', () => {
  it('refuses a 2 MB .nii.gz declaring 2 GB from its header, alone and two at once; a normal call right after succeeds', async () => {
    const h = await start({ CURIA_MEMORY_BUDGET_BYTES: String(CHART_BUDGET) });
    const bomb = gzipBomb();
    expect(bomb.length).toBeLessThan(3 * MiB);
    const { value, peak, before } = await peakRss(async () => {
      const one = await run(h, files(bomb));
      const two = await Promise.all([run(h, files(bomb)), run(h, files(bomb))]);
      return [one, ...two];
    });
    for (const r of value) {
      expect(r.code).toBe('RESOURCE_EXHAUSTED');
      expect(r.details).toContain('NIfTI volume 1024x1024x1000 int16 needs');
      expect(r.details).toContain(`memory budget of ${CHART_BUDGET} bytes`);
      expect(r.details).toContain('CURIA_MEMORY_BUDGET_BYTES');
    }
    const uploadMs = value.map((r) => Math.round(r.ms));
    const growth = (peak - before) / MiB;
    console.log(
      `gzip bomb (${(bomb.length / MiB).toFixed(1)} MiB declaring 2000 MiB): refused in ${uploadMs.join(', ')} ms (upload included); RSS ${Math.round(before / MiB)} → peak ${Math.round(peak / MiB)} MiB (+${growth.toFixed(0)} MiB)`,
    );
    expect(growth).toBeLessThan(150);
    expect(h.server.memory.heldBytes).toBe(0);

    const ct = int16Nifti([64, 64, 8], syntheticCt(64, 64, 8));
    const ok = await run(h, files(gzipSync(ct)));
    expect(ok.code).toBe('OK');
    expect(ok.slices).toBe(8);
    expect(h.server.memory.heldBytes).toBe(0);
  }, 60_000);

  it('a call waits for room while another holds the budget, then is refused with retry-after-ms; the budget comes back when a call ends', async () => {
    // 64×64×40 int16 = 320 KiB of voxels plus the slices in flight: one fits, two do not.
    const h = await start({
      CURIA_MEMORY_BUDGET_BYTES: String(700 * 1024),
      CURIA_MEMORY_BUDGET_WAIT_MS: '80',
    });
    const ct = files(int16Nifti([64, 64, 40], syntheticCt(64, 64, 40)));
    // Call A reads the geometry and then stops reading: it holds its share until it ends.
    const ac = new AbortController();
    const a = h.client.preprocess(requestStream(ct), { signal: ac.signal })[Symbol.asyncIterator]();
    const first: IteratorResult<preprocess.PreprocessResponse> = await a.next();
    expect(first.done ? undefined : first.value.msg?.$case).toBe('geometry');
    const held = h.server.memory.heldBytes;
    expect(held).toBeGreaterThan(327_680);

    const b = await run(h, ct);
    expect(b.code).toBe('RESOURCE_EXHAUSTED');
    expect(b.ms).toBeGreaterThanOrEqual(75);
    expect(b.details).toContain('retry after 100ms');
    expect(b.retryAfter).toBe('100');

    ac.abort();
    await a.return?.(undefined).catch(() => undefined);
    for (let i = 0; i < 100 && h.server.memory.heldBytes > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(h.server.memory.heldBytes).toBe(0);
    const c = await run(h, ct);
    expect(c.code).toBe('OK');
    expect(c.slices).toBe(40);
    const metrics = await h.server.metrics.registry.metrics();
    expect(metrics).toMatch(/curia_memory_budget_refusals_total\{reason="busy"[^}]*\} 1/);
  }, 60_000);

  it('refuses a start message listing 10M slice indices before decoding it, and one under the size limit before deduplicating them; a normal call right after succeeds', async () => {
    const h = await start({ CURIA_MEMORY_BUDGET_BYTES: String(CHART_BUDGET) });
    const ct = gzipSync(int16Nifti([64, 64, 8], syntheticCt(64, 64, 8)));
    const withIndices = (n: number) => [
      startMsg({
        selection: { $case: 'indices', value: { indices: Array.from({ length: n }, (_, i) => i % 5000) } },
      }),
      ...chunkMessages([{ name: 'v.nii.gz', data: ct }], 1 << 20),
    ];
    // ~40 MB: above the service's 4 MiB receive limit, refused by gRPC from the message's length prefix.
    const { value: r, peak, before } = await peakRss(() => run(h, withIndices(10_000_000)));
    expect(r.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.details).toMatch(/^Received message larger than max \(\d+ vs 4194304\)$/);
    console.log(
      `10M slice indices (a ~40 MB start message): RESOURCE_EXHAUSTED in ${Math.round(r.ms)} ms (encoding and transfer of the message included); RSS of the process hosting client and server ${Math.round(before / MiB)} → peak ${Math.round(peak / MiB)} MiB`,
    );
    // ~1 MB: decoded, then refused by the indices cap.
    const capped = await run(h, withIndices(500_000));
    expect(capped.code).toBe('INVALID_ARGUMENT');
    expect(capped.details).toBe('options.selection.indices.indices has 500000 entries; the cap is 32768');
    const ok = await run(h, files(ct));
    expect(ok.code).toBe('OK');
    expect(ok.slices).toBe(8);
  }, 60_000);

  it('refuses a 2 MB RLE DICOM of 8192² from rows × cols × bits before decoding its frame', async () => {
    // What the issue measured at 807 MB: the decoded frame (128 MiB) and its float64 gather (512 MiB).
    const h = await start({ CURIA_MEMORY_BUDGET_BYTES: String(512 * MiB) });
    const n = 8192;
    const dicom = zeroRleFrame(n, n);
    const msgs = [startMsg(), ...chunkMessages([{ name: 'a.dcm', data: dicom }], 1 << 20)];
    const { value: r, peak, before } = await peakRss(() => run(h, msgs));
    expect(r.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.details).toContain(`DICOM volume 8192x8192x1 int16 needs ${n * n * 10} bytes (640.0 MiB)`);
    console.log(
      `RLE DICOM 8192² (${(dicom.length / MiB).toFixed(1)} MiB): refused in ${Math.round(r.ms)} ms; RSS ${Math.round(before / MiB)} → peak ${Math.round(peak / MiB)} MiB`,
    );
    expect(peak - before).toBeLessThan(150 * MiB);
  }, 60_000);

  it('takes streamed upload bytes from the budget as they arrive', async () => {
    const h = await start({ CURIA_MEMORY_BUDGET_BYTES: String(MiB), CURIA_MEMORY_BUDGET_WAIT_MS: '0' });
    const big = int16Nifti([64, 64, 200], syntheticCt(64, 64, 200)); // 1.6 MB uncompressed
    const r = await run(h, [startMsg(), ...chunkMessages([{ name: 'v.nii', data: big }], 256 * 1024)]);
    expect(r.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.details).toMatch(/^an upload of \d+ bytes needs \d+ bytes .* memory budget of 1048576 bytes/);
    expect(h.server.memory.heldBytes).toBe(0);
    const ok = await run(h, files(int16Nifti([64, 64, 8], syntheticCt(64, 64, 8))));
    expect(ok.code).toBe('OK');
  });
});
