import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  createCuriaChannel,
  createCuriaClient,
  fitUploadRequests,
  segment,
  Status,
  studyFiles,
  type Channel,
  type Metadata,
} from '@curia/client';
import { generatePhantom, phantomToNifti } from '@curia/phantom';
import { niftiGzipBomb } from '@curia/volume/testing';

import { LocalCluster } from '../cluster/launcher.js';
import { rejectsWith } from './rejects-with.js';

/**
 * Segment's Fit takes each label map from the process's memory budget from its NIfTI header,
 * before inflating it, on a real SegmentService (spawned on a free port, with real Preprocess and
 * Embed) whose CURIA_MEMORY_BUDGET_BYTES is 64 MiB: a 256 KiB label map declaring 256 MiB is
 * refused with RESOURCE_EXHAUSTED in milliseconds, and a normal Fit right after succeeds.
 */
const BUDGET = 64 * 1024 * 1024;
const LIVER = 5;

let cluster: LocalCluster;
let channel: Channel;
let client: ReturnType<typeof createCuriaClient<typeof segment.SegmentServiceDefinition>>;
let work = '';
let ctPath = '';
let labels: Uint8Array = new Uint8Array();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'curia-seg-budget-'));
  const nii = phantomToNifti(generatePhantom({ size: [64, 64, 6], seed: 5 }), { gzip: true });
  ctPath = join(work, 'ct.nii.gz');
  await writeFile(ctPath, nii.image);
  labels = nii.labels;
  cluster = await LocalCluster.start({
    ports: 'dynamic',
    only: ['preprocess', 'embed', 'segment'],
    env: { CURIA_SHUTDOWN_GRACE_MS: '1000' },
    serviceEnv: {
      segment: { CURIA_SEGMENT_HEADS_DIR: join(work, 'heads'), CURIA_MEMORY_BUDGET_BYTES: String(BUDGET) },
    },
  });
  channel = createCuriaChannel(cluster.target('segment'));
  client = createCuriaClient(segment.SegmentServiceDefinition, channel, { retryMaxAttempts: 1 });
}, 180_000);
afterAll(async () => {
  channel?.close();
  await cluster?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('Segment Fit on the memory budget (real server)', () => {
  const fit = async (name: string, labelMap: Uint8Array, onTrailer?: (t: Metadata) => void) => {
    const { files } = await studyFiles(ctPath);
    return client.fit(
      fitUploadRequests({ name, classes: [{ value: LIVER, label: 'liver' }], folds: 2 }, [
        {
          study: { header: { studyId: name }, labels: { encoding: { $case: 'nifti', value: labelMap } } },
          files,
        },
      ]),
      { deadline: 120_000, ...(onTrailer ? { onTrailer } : {}) },
    );
  };

  it('refuses a label map declaring 256 MiB in milliseconds, then fits a normal one', async () => {
    const bomb = niftiGzipBomb([1024, 1024, 256], 'uint8');
    expect(bomb.length).toBeLessThan(1024 * 1024);
    const t0 = performance.now();
    await rejectsWith(
      fit('bomb', bomb),
      Status.RESOURCE_EXHAUSTED,
      new RegExp(
        `^studies\\[0\\]\\.labels 1024x1024x256 uint8 needs \\d+ bytes .* memory budget of ${BUDGET} bytes`,
      ),
    );
    const ms = performance.now() - t0;
    console.log(`segment Fit label-map bomb refused in ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(2_000);

    const ok = await fit('liver', labels);
    expect(ok.head?.info?.name).toBe('liver');
    expect(ok.head?.info?.labels).toEqual(['liver']);
  });
});
