import { afterEach, describe, expect, it } from 'vitest';

import {
  ClientError,
  common,
  createCuriaChannel,
  createCuriaClient,
  gateway,
  Status,
  type Channel,
} from '@curia/client';
import { CuriaError } from '@curia/errors';
import { CuriaServer, loadConfig, RETRY_AFTER_TRAILER, serviceEnvSchema } from '@curia/kit';
import { heads } from '@curia/proto';
import { startFakeEmbedServer } from '@curia/stages/testing';
import { niftiGzipBomb } from '@curia/volume/testing';

import { gatewayEnvSchema } from './config.js';
import { setupGateway } from './service.js';

const servers: CuriaServer[] = [];
const channels: Channel[] = [];
afterEach(async () => {
  for (const c of channels.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

/** A real gateway on port 0 whose stages point at a closed port (nothing answers there). */
async function startGateway(env: Record<string, string>) {
  const parsed = loadConfig(gatewayEnvSchema, {
    CURIA_GRPC_HOST: '127.0.0.1',
    CURIA_LOG_LEVEL: 'silent',
    CURIA_PROCESS_METRICS: 'false',
    CURIA_PREPROCESS_TARGET: '127.0.0.1:1',
    CURIA_EMBED_TARGET: '127.0.0.1:1',
    CURIA_HEADS_TARGET: '127.0.0.1:1',
    ...env,
  });
  const server = new CuriaServer({ name: 'gateway', env: parsed });
  const hooks = setupGateway(server, parsed);
  const ports = await server.start();
  server.setServing(true);
  servers.push(server);
  const channel = createCuriaChannel(`127.0.0.1:${ports.grpcPort}`);
  channels.push(channel);
  return { server, hooks, client: createCuriaClient(gateway.GatewayServiceDefinition, channel) };
}

/** The client takes an AsyncIterable request stream. */
// eslint-disable-next-line @typescript-eslint/require-await -- an async generator over a fixed list
async function* streamOf(msgs: gateway.AnalyzeStudyRequest[]): AsyncGenerator<gateway.AnalyzeStudyRequest> {
  yield* msgs;
}

const start = (extra: Partial<gateway.AnalyzeStudyStart> = {}): gateway.AnalyzeStudyRequest => ({
  msg: {
    $case: 'start',
    value: gateway.AnalyzeStudyStart.fromPartial({
      header: { studyId: 'unit' },
      source: { $case: 'ref', value: { uri: 'file:///nowhere.nii.gz' } },
      embeddingOutputs: [{ kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 }],
      ...extra,
    }),
  },
});

describe('GatewayService', () => {
  it('sheds studies beyond CURIA_GATEWAY_MAX_STUDIES with RESOURCE_EXHAUSTED and a retry hint', async () => {
    const { client, server } = await startGateway({
      CURIA_GATEWAY_MAX_STUDIES: '1',
      CURIA_GATEWAY_RETRY_AFTER_MS: '750',
    });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = (async () => {
      const abort = new AbortController();
      // The first study holds its slot: its request stream stays open without a `start`.
      const requests = (async function* () {
        await held;
        yield start();
      })();
      try {
        for await (const _ of client.analyzeStudy(requests, { signal: abort.signal })) break;
      } catch {
        // it fails later (no stage reachable); only the slot matters here
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    let retryAfter: string | undefined;
    const second = async () => {
      for await (const _ of client.analyzeStudy(streamOf([start()]), {
        onTrailer: (t) => (retryAfter = t.get(RETRY_AFTER_TRAILER)),
      }));
    };
    const err = await second().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(Status.RESOURCE_EXHAUSTED);
    expect((err as ClientError).details).toMatch(/CURIA_GATEWAY_MAX_STUDIES/);
    expect(retryAfter).toBe('750');
    const metrics = await server.metrics.registry.getSingleMetricAsString('curia_gateway_shed_total');
    expect(metrics).toMatch(/curia_gateway_shed_total(\{[^}]*\})? 1/);
    release();
    await first;
  });

  it('rejects a stream without start, and a study without source, before touching any stage', async () => {
    const { client } = await startGateway({});
    const run = async (msgs: gateway.AnalyzeStudyRequest[]) => {
      for await (const _ of client.analyzeStudy(streamOf(msgs)));
    };
    await expect(
      run([
        {
          msg: {
            $case: 'chunk',
            value: { fileName: 'a', data: new Uint8Array(1), lastChunk: true, offset: 0 },
          },
        },
      ]),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringMatching(/first AnalyzeStudy message must be `start`/) as unknown,
    });
    await expect(run([start({ source: undefined })])).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringMatching(/start.source is required/) as unknown,
    });
    await expect(
      run([start({ header: common.StudyHeader.fromPartial({ studyId: 'John^Doe' }) })]),
    ).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringMatching(/study_id/) as unknown,
    });
    // A malformed mask is refused before any stage is called (the stages here are unreachable).
    const rle = (dims: number[], counts: number[]): common.InputMask => ({
      mask: { $case: 'rle', value: { dims, counts, label: '' } },
    });
    await expect(run([start({ mask: rle([2, 2, 2], [3, 4]) })])).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
      details: expect.stringMatching(/start\.mask\.rle\.counts sum to 7, but .* hold 8 voxels/) as unknown,
    });
    await expect(run([start({ mask: rle([2048, 2048, 2048], [0]) })])).rejects.toMatchObject({
      code: Status.RESOURCE_EXHAUSTED,
      details: expect.stringMatching(/CURIA_GATEWAY_MAX_MASK_VOXELS/) as unknown,
    });
  });

  it('refuses a 2 MB NIfTI mask declaring 2 GiB from its header (memory budget), alone and two at once, before inflating it', async () => {
    // The chart gives the gateway 2 GiB; its budget is CURIA_MEMORY_BUDGET_FRACTION 0.6 of that.
    const budget = Math.floor(0.6 * 2 * 1024 ** 3);
    const { client, server } = await startGateway({ CURIA_MEMORY_BUDGET_BYTES: String(budget) });
    // A float64 mask of 1024×1024×256 (256 Mi voxels, under CURIA_GATEWAY_MAX_MASK_VOXELS) that
    // really inflates to the 2 GiB it declares.
    const bomb = niftiGzipBomb([1024, 1024, 256], 'float64');
    expect(bomb.length).toBeLessThan(3 * 1024 ** 2);
    const study = async (mask: common.InputMask) => {
      const t0 = performance.now();
      const err = await (async () => {
        for await (const _ of client.analyzeStudy(streamOf([start({ mask })])));
      })().catch((e: unknown) => e);
      return { err: err as ClientError, ms: performance.now() - t0 };
    };
    const nifti: common.InputMask = { mask: { $case: 'nifti', value: bomb } };
    const before = process.memoryUsage().rss;
    const rs = [await study(nifti), ...(await Promise.all([study(nifti), study(nifti)]))];
    const grown = (process.memoryUsage().rss - before) / 1024 ** 2;
    for (const r of rs) {
      expect(r.err.code).toBe(Status.RESOURCE_EXHAUSTED);
      expect(r.err.details).toContain('start.mask.nifti 1024x1024x256 float64 needs');
      expect(r.err.details).toContain(`memory budget of ${budget} bytes`);
    }
    console.log(
      `NIfTI mask bomb (${(bomb.length / 1024 ** 2).toFixed(1)} MiB declaring 2048 MiB): RESOURCE_EXHAUSTED in ${rs.map((r) => Math.round(r.ms)).join(', ')} ms; RSS +${grown.toFixed(0)} MiB`,
    );
    expect(grown).toBeLessThan(150);
    expect(server.memory.heldBytes).toBe(0);
    // A small mask right after is decoded and the study goes on to the (unreachable) stages.
    const small = await study({
      mask: { $case: 'rle', value: { dims: [4, 4, 4], counts: [60, 4], label: '' } },
    });
    expect(small.err.code).toBe(Status.UNAVAILABLE);
    expect(server.memory.heldBytes).toBe(0);
  });

  it('answers UNAVAILABLE quickly when the stages cannot be reached', async () => {
    const { client } = await startGateway({});
    const t0 = performance.now();
    const err = await (async () => {
      for await (const _ of client.analyzeStudy(streamOf([start()])));
    })().catch((e: unknown) => e);
    expect((err as ClientError).code).toBe(Status.UNAVAILABLE);
    expect((err as ClientError).details).toMatch(/^embed: /);
    expect(performance.now() - t0).toBeLessThan(8000);
  });

  it('refuses a head trained on another version of the model before any stage work (FAILED_PRECONDITION)', async () => {
    const embed = await startFakeEmbedServer({
      models: [
        { name: 'm', version: '1', sha256: 'a', demoWeights: true, isDefault: true, featureSpace: '' },
        { name: 'm', version: '2', sha256: 'b', demoWeights: true, isDefault: false, featureSpace: '' },
      ],
    });
    const heads = await startFakeHeads({ name: 'organ', version: '1', model: 'm@1' });
    try {
      // Preprocess is unreachable: reaching it would fail with UNAVAILABLE, not FAILED_PRECONDITION.
      const { client } = await startGateway({
        CURIA_EMBED_TARGET: `127.0.0.1:${embed.port}`,
        CURIA_HEADS_TARGET: `127.0.0.1:${heads.port}`,
      });
      const analyse = async (model: string) => {
        for await (const _ of client.analyzeStudy(streamOf([start({ model, heads: ['organ'] })])));
      };
      await expect(analyse('m@2')).rejects.toMatchObject({
        code: Status.FAILED_PRECONDITION,
        details: expect.stringMatching(/head 'organ@1' was trained on model 'm@1', not on 'm@2'/) as unknown,
      });
      for (const ok of ['m@1', 'm', '']) {
        await expect(analyse(ok)).rejects.toMatchObject({
          code: Status.UNAVAILABLE,
          details: expect.stringMatching(/^preprocess: /) as unknown,
        });
      }
      expect(embed.seen.streams).toBe(0);
    } finally {
      await Promise.all([embed.close(), heads.close()]);
    }
  });
});

/** A HeadsService on port 0 that knows one head (GetHead); its other rpcs are never called here. */
async function startFakeHeads(head: Partial<common.HeadInfo>) {
  const server = new CuriaServer({
    name: 'heads',
    env: loadConfig(serviceEnvSchema, { CURIA_GRPC_HOST: '127.0.0.1', CURIA_LOG_LEVEL: 'silent' }),
  });
  const info = common.HeadInfo.fromPartial({
    ...head,
    requirements: {
      features: [{ kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 }],
      slices: { selection: { $case: 'all', value: {} } },
    },
  });
  const unimplemented = () => Promise.reject(new CuriaError('UNIMPLEMENTED', 'fake'));
  server.add(heads.HeadsServiceDefinition, {
    getInfo: unimplemented,
    listHeads: unimplemented,
    predict: unimplemented,
    fit: unimplemented,
    promoteHead: unimplemented,
    getHead: (req) =>
      req.name === info.name
        ? Promise.resolve({ head: info, promotedVersion: info.version })
        : Promise.reject(new CuriaError('NOT_FOUND', `head '${req.name}' is unknown`)),
  });
  const ports = await server.start();
  server.setServing(true);
  return { port: ports.grpcPort, close: () => server.shutdown() };
}
