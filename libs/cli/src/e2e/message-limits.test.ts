import { createClient, type Client } from 'nice-grpc';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  ClientError,
  common,
  createCuriaChannel,
  createCuriaClient,
  embed,
  gateway,
  heads,
  preprocess,
  register,
  segment,
  SERVICE_DEFINITIONS,
  Status,
  type Channel,
  type CuriaServiceName,
} from '@curia/client';
import { writeNifti } from '@curia/volume';

import { LocalCluster } from '../cluster/launcher.js';

/**
 * Every service's receive limit (CURIA_MAX_RECEIVE_MESSAGE_BYTES, its config schema's default) on
 * real processes: GetInfo reports it, a message one byte over it is refused by gRPC with
 * RESOURCE_EXHAUSTED naming the limit before it is decoded, and the largest message the service's
 * rpcs legitimately carry still reaches the handler.
 */
const MiB = 1024 ** 2;
const LIMITS = {
  embed: 8 * MiB,
  preprocess: 4 * MiB,
  register: 4 * MiB,
  gateway: 16 * MiB,
  segment: 16 * MiB,
  heads: 64 * MiB,
} as const;
type Service = keyof typeof LIMITS;

/** The streamed (or, for Heads, unary) rpc each check calls. */
const RPCS: Record<Service, { service: { fullName: string }; method: string }> = {
  embed: { service: embed.EmbedServiceDefinition, method: 'Embed' },
  preprocess: { service: preprocess.PreprocessServiceDefinition, method: 'Preprocess' },
  register: { service: register.RegisterServiceDefinition, method: 'Register' },
  gateway: { service: gateway.GatewayServiceDefinition, method: 'AnalyzeStudy' },
  segment: { service: segment.SegmentServiceDefinition, method: 'Segment' },
  heads: { service: heads.HeadsServiceDefinition, method: 'Predict' },
};

const bytes = (b: Uint8Array): Uint8Array => b;
/** One rpc path called with pre-encoded messages (a unary rpc is a one-message stream on the wire). */
const rawDefinition = (path: string) =>
  ({
    call: {
      path,
      requestStream: true,
      responseStream: true,
      requestSerialize: bytes,
      requestDeserialize: bytes,
      responseSerialize: bytes,
      responseDeserialize: bytes,
      options: {},
    },
  }) as const;

interface Outcome {
  readonly code: string;
  readonly details: string;
  readonly responses: number;
  readonly ms: number;
}

let cluster: LocalCluster;
const channels: Channel[] = [];

beforeAll(async () => {
  cluster = await LocalCluster.start({ ports: 'dynamic', env: { CURIA_SHUTDOWN_GRACE_MS: '1000' } });
}, 180_000);
afterAll(async () => {
  for (const c of channels) c.close();
  await cluster.stop();
});

function channelTo(service: Service): Channel {
  const port = cluster.endpoints().find((e) => e.service === service)!.grpcPort;
  // No client-side send cap: the server is what must refuse.
  const channel = createCuriaChannel(`127.0.0.1:${port}`, { maxSendMessageBytes: 256 * MiB });
  channels.push(channel);
  return channel;
}

// eslint-disable-next-line @typescript-eslint/require-await -- an async iterable over a fixed list
async function* streamOf<T>(msgs: readonly T[]): AsyncGenerator<T> {
  yield* msgs;
}

async function send(service: Service, messages: readonly Uint8Array[]): Promise<Outcome> {
  const { service: def, method } = RPCS[service];
  const client: Client<ReturnType<typeof rawDefinition>> = createClient(
    rawDefinition(`/${def.fullName}/${method}`),
    channelTo(service),
  );
  const t0 = performance.now();
  let responses = 0;
  try {
    for await (const _ of client.call(streamOf(messages), { signal: AbortSignal.timeout(60_000) }))
      responses++;
    return { code: 'OK', details: '', responses, ms: performance.now() - t0 };
  } catch (e) {
    if (!(e instanceof ClientError)) throw e;
    return { code: Status[e.code], details: e.details, responses, ms: performance.now() - t0 };
  }
}

const header = { studyId: 'limits', format: common.VolumeFormat.AUTO, seriesInstanceUid: '', volumeIndex: 0 };
const nowhere = { $case: 'ref' as const, value: { uri: 'file:///nowhere.nii.gz' } };
/** `n` bytes that are not a valid NIfTI (the handler refuses them; the transport must not). */
const filler = (n: number): Uint8Array => new Uint8Array(n).fill(7);
/** An uncompressed int16 NIfTI of 128×128×32: 1 MiB of voxels, so its first chunk is a full 1 MiB. */
const niftiFile = (): Uint8Array => {
  const v = new Int16Array(128 * 128 * 32).map((_, i) => (i % 89) - 40);
  return writeNifti({
    dims: [128, 128, 32],
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: new Uint8Array(v.buffer),
    affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
  });
};
const chunksOf = (file: Uint8Array, name: string): common.FileChunk[] => {
  const out: common.FileChunk[] = [];
  for (let o = 0; o < file.length; o += MiB)
    out.push({
      fileName: name,
      data: file.subarray(o, o + MiB),
      offset: o,
      lastChunk: o + MiB >= file.length,
    });
  return out;
};

/** The largest message each service's rpcs legitimately carry, with what must come of it. */
const LEGIT: Record<Service, { what: string; messages: () => Uint8Array[]; ok: boolean }> = {
  embed: {
    what: 'a full F32 512×512 slice with its 512×512 mask',
    ok: true,
    messages: () => {
      const px = new Float32Array(512 * 512).map((_, i) => ((i * 7919) % 1000) / 500 - 1);
      const enc = (m: embed.EmbedRequest) => embed.EmbedRequest.encode(m).finish();
      return [
        enc({
          msg: {
            $case: 'start',
            value: embed.EmbedStart.fromPartial({
              studyId: 'limits',
              outputs: [
                { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
                { kind: { $case: 'maskPooled', value: { prenorm: false } }, dtype: common.DType.F32 },
              ],
            }),
          },
        }),
        enc({
          msg: {
            $case: 'slice',
            value: {
              sliceId: 0,
              pixels: { dtype: common.DType.F32, shape: [1, 512, 512], data: new Uint8Array(px.buffer) },
              mask: { dtype: common.DType.U8, shape: [512, 512], data: new Uint8Array(512 * 512).fill(1) },
            },
          },
        }),
      ];
    },
  },
  preprocess: {
    what: 'a study uploaded in full 1 MiB chunks',
    ok: true,
    messages: () => {
      const file = niftiFile();
      const enc = (m: preprocess.PreprocessRequest) => preprocess.PreprocessRequest.encode(m).finish();
      return [
        enc({
          msg: {
            $case: 'start',
            value: preprocess.PreprocessStart.fromPartial({
              header,
              source: { $case: 'streamed', value: { fileCount: 1, totalBytes: file.length } },
              options: { modelBundle: '', outputDtype: common.DType.F32 },
            }),
          },
        }),
        ...chunksOf(file, 'ct.nii').map((c) => enc({ msg: { $case: 'chunk', value: c } })),
      ];
    },
  },
  register: {
    what: 'a 1 MiB input chunk',
    ok: false,
    messages: () => {
      const enc = (m: register.RegisterRequest) => register.RegisterRequest.encode(m).finish();
      const input = (inputId: string, role: register.InputRole) =>
        register.RegisterInput.fromPartial({
          inputId,
          role,
          header,
          source: { $case: 'streamed', value: { fileCount: 1, totalBytes: MiB } },
        });
      return [
        enc({
          msg: {
            $case: 'start',
            value: register.RegisterStart.fromPartial({
              inputs: [input('f', register.InputRole.FIXED), input('m', register.InputRole.MOVING)],
            }),
          },
        }),
        enc({
          msg: {
            $case: 'chunk',
            value: {
              inputId: 'f',
              chunk: { fileName: 'f.nii', data: filler(MiB), offset: 0, lastChunk: true },
            },
          },
        }),
      ];
    },
  },
  gateway: {
    what: 'a start carrying a 15 MiB inline NIfTI mask',
    ok: false,
    messages: () => [
      gateway.AnalyzeStudyRequest.encode({
        msg: {
          $case: 'start',
          value: gateway.AnalyzeStudyStart.fromPartial({
            header,
            source: nowhere,
            embeddingOutputs: [
              { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
            ],
            mask: { mask: { $case: 'nifti', value: filler(15 * MiB) } },
          }),
        },
      }).finish(),
    ],
  },
  segment: {
    what: 'a start carrying a 15 MiB inline reference label map',
    ok: false,
    messages: () => [
      segment.SegmentRequest.encode({
        msg: {
          $case: 'start',
          value: segment.SegmentStart.fromPartial({
            header,
            source: nowhere,
            referenceLabels: { encoding: { $case: 'nifti', value: filler(15 * MiB) } },
          }),
        },
      }).finish(),
    ],
  },
  heads: {
    what: 'a 60 MiB Predict (an attention-3d head’s tokens)',
    ok: false,
    messages: () => [
      heads.PredictRequest.encode(
        heads.PredictRequest.fromPartial({
          head: 'no-such-head',
          slices: [
            {
              sliceId: 0,
              features: [
                {
                  requestIndex: 0,
                  tensor: { dtype: common.DType.F32, shape: [15 * MiB], data: filler(60 * MiB) },
                },
              ],
            },
          ],
        }),
      ).finish(),
    ],
  },
};

describe.each(Object.keys(LIMITS) as Service[])('%s receive limit', (service) => {
  const limit = LIMITS[service];

  it(`defaults to ${limit / MiB} MiB and reports it in GetInfo`, async () => {
    const fullName = RPCS[service].service.fullName as CuriaServiceName;
    const client = createCuriaClient(SERVICE_DEFINITIONS[fullName], channelTo(service));
    const { info } = await client.getInfo({});
    expect(info?.limits.max_receive_message_bytes).toBe(String(limit));
  });

  it('refuses a message one byte over the limit with RESOURCE_EXHAUSTED naming the limit, before decoding it', async () => {
    const out = await send(service, [filler(limit + 1)]);
    expect(out.code).toBe('RESOURCE_EXHAUSTED');
    expect(out.details).toBe(`Received message larger than max (${limit + 1} vs ${limit})`);
    expect(out.ms).toBeLessThan(5_000);
  });

  it(`still takes ${LEGIT[service].what}`, async () => {
    const msgs = LEGIT[service].messages();
    const largest = Math.max(...msgs.map((m) => m.length));
    expect(largest).toBeLessThanOrEqual(limit);
    const out = await send(service, msgs);
    expect(out.details).not.toMatch(/larger than max/);
    if (LEGIT[service].ok) {
      expect(out.code).toBe('OK');
      expect(out.responses).toBeGreaterThan(0);
    } else {
      // Past the transport: the handler decoded it and answered (the filler is not a valid input).
      expect(out.code).not.toBe('RESOURCE_EXHAUSTED');
    }
  });
});
