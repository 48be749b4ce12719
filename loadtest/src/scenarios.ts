import { generatePhantom, phantomImageNifti } from '@curia/phantom';
import { common, embed, gateway, register, segment } from '@curia/proto';
import { int16Bytes, writeNifti } from '@curia/volume';

import type { CallContext, CallFn, CallOutcome } from './generator.js';
import { asBuffer, type RawClient } from './raw-client.js';

/** A named workload: one call function plus what one call's unit of work is. */
export interface Scenario {
  readonly name: string;
  /** What `units` count (`call`, `slice`, `study`). */
  readonly unit: string;
  readonly call: CallFn;
}

/** Image side of the Curia backbone input (pixels). */
export const IMAGE_SIZE = 512;

/**
 * A GetInfo unary call on any Curia service (`curia.embed.v1.EmbedService`, …) — the RPC used to
 * calibrate the generator against ghz (cheap, so the client's own overhead is what is compared).
 */
export function getInfoScenario(client: RawClient, grpcService: string): Scenario {
  const path = `/${grpcService}/GetInfo`;
  const empty = Buffer.alloc(0);
  return {
    name: `${grpcService.split('.').pop() ?? grpcService}.GetInfo`,
    unit: 'call',
    call: ({ deadline, signal }) => client.unary(path, empty, deadline, signal),
  };
}

/** Deterministic pseudo-random z-scored pixels (xorshift32; values in about ±2, like normalised CT). */
function noisePixels(seed: number): Float32Array {
  const px = new Float32Array(IMAGE_SIZE * IMAGE_SIZE);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < px.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    px[i] = (x / 0x1_0000_0000) * 4 - 2;
  }
  return px;
}

/** Options of {@link embedScenario}. */
export interface EmbedScenarioOptions {
  /** Slices per Embed stream (default 1). */
  readonly slicesPerCall?: number;
  /** Model name, empty for the service default. */
  readonly model?: string;
}

/**
 * One Embed bidi stream per call: `start` (CLS feature, F32), `slicesPerCall` preprocessed
 * slices, half-close; OK when every result and `done` arrived. Messages are encoded once up
 * front, so the generator spends its time on gRPC, not on protobuf.
 */
export function embedScenario(client: RawClient, options: EmbedScenarioOptions = {}): Scenario {
  const slices = options.slicesPerCall ?? 1;
  const path = `/${embed.EmbedServiceDefinition.fullName}/Embed`;
  const start = asBuffer(
    embed.EmbedRequest.encode({
      msg: {
        $case: 'start',
        value: {
          model: options.model ?? '',
          studyId: 'loadtest',
          outputs: [{ kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 }],
        },
      },
    }).finish(),
  );
  const messages = [start];
  for (let i = 0; i < slices; i++) {
    const px = noisePixels(i + 1);
    messages.push(
      asBuffer(
        embed.EmbedRequest.encode({
          msg: {
            $case: 'slice',
            value: {
              sliceId: i,
              pixels: {
                dtype: common.DType.F32,
                shape: [1, IMAGE_SIZE, IMAGE_SIZE],
                data: new Uint8Array(px.buffer),
              },
            },
          },
        }).finish(),
      ),
    );
  }
  // EmbedResponse field 1 (`result`, length-delimited) starts with tag byte 0x0a; `done` is field 2.
  const isResult = (b: Buffer): boolean => b[0] === 0x0a;
  return {
    name: `Embed×${slices}`,
    unit: 'slice',
    call: async (ctx) => {
      const outcome = await client.bidi(path, messages, isResult, ctx.deadline, ctx.signal, true);
      if (outcome.code === 'OK' && outcome.units !== slices) {
        return { ...outcome, code: 'INCOMPLETE' };
      }
      return outcome;
    },
  };
}

/** Upload chunk size of AnalyzeStudy (a header-sized first chunk would be fine too; 16 KiB keeps several). */
const CHUNK_BYTES = 16 * 1024;

/** A study call with a streamed upload: its path, `start` message, file and how to read the answers. */
interface StudyUpload {
  readonly path: string;
  /** The encoded `start` message. */
  readonly start: Uint8Array;
  /** The file, sent as `study.nii` in chunks of {@link CHUNK_BYTES}. */
  readonly file: Uint8Array;
  /** Encodes one request message carrying a chunk. */
  readonly chunk: (chunk: common.FileChunk) => Uint8Array;
  /** Whether a response is the final `done` message. */
  readonly isDone: (response: Buffer) => boolean;
}

/** An in-memory file as upload chunks of {@link CHUNK_BYTES}. */
function fileChunks(file: Uint8Array, fileName: string): common.FileChunk[] {
  const chunks: common.FileChunk[] = [];
  for (let offset = 0; offset < file.length; offset += CHUNK_BYTES) {
    const data = file.subarray(offset, offset + CHUNK_BYTES);
    chunks.push({ fileName, data, lastChunk: offset + data.length >= file.length, offset });
  }
  return chunks;
}

/** Sends encoded request messages, half-closes; OK only when exactly one `done` (`isDone`) arrived. */
async function streamedCall(
  client: RawClient,
  path: string,
  messages: readonly Buffer[],
  isDone: (response: Buffer) => boolean,
  ctx: CallContext,
): Promise<CallOutcome> {
  const outcome = await client.bidi(path, messages, isDone, ctx.deadline, ctx.signal);
  if (outcome.code === 'OK' && outcome.units !== 1) return { ...outcome, code: 'INCOMPLETE' };
  return outcome;
}

/** Sends `start` and the file in chunks, half-closes; OK only when exactly one `done` arrived. */
function uploadStudy(client: RawClient, u: StudyUpload, ctx: CallContext): Promise<CallOutcome> {
  const chunks = fileChunks(u.file, 'study.nii').map((c) => asBuffer(u.chunk(c)));
  return streamedCall(client, u.path, [asBuffer(u.start), ...chunks], u.isDone, ctx);
}

/** Options of {@link analyzeScenario}. */
export interface AnalyzeScenarioOptions {
  /** Phantom volume size: columns × rows × slices (default 64×64×8). */
  readonly dims?: readonly [number, number, number];
  /** Heads to run (default none: preprocess + embed only). */
  readonly heads?: readonly string[];
  /** Return the CLS embedding of every slice (default true when no head is given). */
  readonly embeddings?: boolean;
}

/**
 * A small int16 NIfTI phantom (a bright disc in a dark body, 1.5 mm pixels, 5 mm slices), with
 * the call number folded into two voxels of every slice so that every study is new to the
 * gateway's per-slice feature cache — the load measures real work, not cache hits.
 */
export function phantomNifti(dims: readonly [number, number, number], variant: number): Uint8Array {
  const [nx, ny, nz] = dims;
  const v = new Int16Array(nx * ny * nz);
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const r = Math.hypot(x - nx / 2, y - ny / 2);
        v[(z * ny + y) * nx + x] = r < nx / 6 ? 300 + z : r < nx / 2.2 ? 40 : -1000;
      }
    }
  }
  // Every slice differs between variants (the cache is per slice).
  for (let z = 0; z < nz; z++) {
    v[z * nx * ny] = -1000 + (variant % 2000);
    v[z * nx * ny + 1] = -1000 + (Math.floor(variant / 2000) % 2000);
  }
  return writeNifti({
    dims: [nx, ny, nz],
    datatypeCode: 4,
    bitpix: 16,
    voxelBytes: int16Bytes(v),
    affine: [-1.5, 0, 0, 0, 0, -1.5, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1],
  });
}

/**
 * One AnalyzeStudy per call: `start` (streamed NIfTI, header.study_id `loadtest-<n>`) and the
 * file in one chunk; OK when `done` arrived. Units are studies.
 */
export function analyzeScenario(client: RawClient, options: AnalyzeScenarioOptions = {}): Scenario {
  const dims = options.dims ?? [64, 64, 8];
  const heads = [...(options.heads ?? [])];
  const embeddings = options.embeddings ?? heads.length === 0;
  const path = `/${gateway.GatewayServiceDefinition.fullName}/AnalyzeStudy`;
  // AnalyzeStudyResponse field 5 (`done`) starts with tag byte 0x2a.
  const isDone = (b: Buffer): boolean => b[0] === 0x2a;
  let studies = 0;
  return {
    name: `AnalyzeStudy ${dims.join('×')}${heads.length ? ` heads=${heads.join(',')}` : ''}`,
    unit: 'study',
    call: async (ctx) => {
      // A counter of the scenario, not the run's seq: runs restart seq at 0, the cache does not forget.
      const study = studies++;
      const file = phantomNifti(dims, study);
      const start = gateway.AnalyzeStudyRequest.encode({
        msg: {
          $case: 'start',
          value: gateway.AnalyzeStudyStart.fromPartial({
            header: {
              studyId: `loadtest-${study}`,
              format: common.VolumeFormat.NIFTI,
              seriesInstanceUid: '',
              volumeIndex: 0,
            },
            source: { $case: 'streamed', value: { fileCount: 1, totalBytes: file.length } },
            heads,
            embeddingOutputs: embeddings
              ? [{ kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 }]
              : [],
            model: '',
            survivalTimes: [],
            returnSlicePredictions: false,
          }),
        },
      }).finish();
      const chunk = (value: common.FileChunk): Uint8Array =>
        gateway.AnalyzeStudyRequest.encode({ msg: { $case: 'chunk', value } }).finish();
      return uploadStudy(client, { path, start, file, chunk, isDone }, ctx);
    },
  };
}

/** Options of {@link segmentScenario}. */
export interface SegmentScenarioOptions {
  /** Phantom volume size: columns × rows × slices (default 64×64×8). */
  readonly dims?: readonly [number, number, number];
}

/**
 * One Segment per call with the prompt head `click` (weightless, so no head has to be fitted or
 * stored): `start` (streamed NIfTI, header.study_id `loadtest-seg-<n>`, one positive point at the
 * volume centre in INPUT_VOXEL coordinates, `output.omit_nifti_mask` so that the answer is the
 * geometry and the summary only), then the file in chunks; OK when `done` arrived. The study is a
 * `@curia/phantom` CT whose noise seed is the call number, so every slice is new to Segment's token
 * cache and every call runs Preprocess → Embed → the head. Units are studies.
 */
export function segmentScenario(client: RawClient, options: SegmentScenarioOptions = {}): Scenario {
  const dims = options.dims ?? [64, 64, 8];
  const path = `/${segment.SegmentServiceDefinition.fullName}/Segment`;
  const centre = dims.map((n) => Math.floor(n / 2));
  // SegmentResponse field 5 (`done`) starts with tag byte 0x2a.
  const isDone = (b: Buffer): boolean => b[0] === 0x2a;
  let studies = 0;
  return {
    name: `Segment click ${dims.join('×')}`,
    unit: 'study',
    call: async (ctx) => {
      // A counter of the scenario, not the run's seq: runs restart seq at 0, the cache does not forget.
      const study = studies++;
      const file = phantomImageNifti(generatePhantom({ size: dims, seed: study + 1 }), { gzip: false });
      const start = segment.SegmentRequest.encode({
        msg: {
          $case: 'start',
          value: segment.SegmentStart.fromPartial({
            header: { studyId: `loadtest-seg-${study}`, format: common.VolumeFormat.NIFTI },
            source: { $case: 'streamed', value: { fileCount: 1, totalBytes: file.length } },
            points: [{ xyz: centre, space: segment.CoordinateSpace.INPUT_VOXEL, positive: true }],
            output: { omitNiftiMask: true },
          }),
        },
      }).finish();
      const chunk = (value: common.FileChunk): Uint8Array =>
        segment.SegmentRequest.encode({ msg: { $case: 'chunk', value } }).finish();
      return uploadStudy(client, { path, start, file, chunk, isDone }, ctx);
    },
  };
}

/** Options of {@link registerScenario}. */
export interface RegisterScenarioOptions {
  /** Phantom volume size: columns × rows × slices (default 64×64×24, 6.4 × 6.4 × 4 mm voxels). */
  readonly dims?: readonly [number, number, number];
  /** World shift of the moving volume against the fixed one, RAS mm (default 6, −4, 5). */
  readonly shiftMm?: readonly [number, number, number];
  /** `working_spacing_mm` (default 6: a coarse grid keeps one call to seconds on 2 cores). */
  readonly workingSpacingMm?: number;
  /** Called with every `progress` event of every call (the response is decoded only when set). */
  readonly onProgress?: (progress: common.Progress) => void;
}

/**
 * One Register per call: a MIND deformable registration of a `@curia/phantom` CT (noise seed 1, the
 * fixed input) and the same anatomy with other noise (seed 2) whose affine is shifted by `shiftMm`
 * (the moving input), both uploaded as streamed NIfTI: `start` declaring the two inputs and the
 * options (no field or warped image requested, so the answer is geometry, transform and the
 * summary), then each input's chunks tagged with its `input_id`, as `registerUploadRequests` of
 * `@curia/client` sends them (from memory here, encoded once: Register keeps no cache). OK when
 * `done` arrived. Units are registrations.
 */
export function registerScenario(client: RawClient, options: RegisterScenarioOptions = {}): Scenario {
  const dims = options.dims ?? [64, 64, 24];
  const shift = options.shiftMm ?? [6, -4, 5];
  // The phantom's in-plane default (a 41 cm field of view), 4 mm slices.
  const inPlane = 409.6 / Math.max(dims[0], dims[1]);
  const grid = { size: dims, spacing: [inPlane, inPlane, 4] as const };
  const fixed = generatePhantom({ ...grid, seed: 1 });
  const moving = generatePhantom({ ...grid, seed: 2 });
  // Row-major 4×4: the translation is elements 3, 7 and 11.
  const shifted = moving.affine.map((v, i) => (i % 4 === 3 && i < 12 ? v + shift[i >> 2]! : v));
  const inputs = [
    { inputId: 'fixed', role: register.InputRole.FIXED, file: phantomImageNifti(fixed, { gzip: false }) },
    {
      inputId: 'moving',
      role: register.InputRole.MOVING,
      file: phantomImageNifti({ ...moving, affine: shifted }, { gzip: false }),
    },
  ];
  const encode = (m: register.RegisterRequest): Buffer =>
    asBuffer(register.RegisterRequest.encode(m).finish());
  const messages = [
    encode({
      msg: {
        $case: 'start',
        value: {
          inputs: inputs.map((i) =>
            register.RegisterInput.fromPartial({
              inputId: i.inputId,
              role: i.role,
              header: { studyId: `loadtest-reg-${i.inputId}`, format: common.VolumeFormat.NIFTI },
              source: { $case: 'streamed', value: { fileCount: 1, totalBytes: i.file.length } },
              modality: register.Modality.CT,
            }),
          ),
          options: register.RegisterOptions.fromPartial({
            transform: register.TransformModel.DEFORMABLE,
            features: register.FeatureSet.MIND,
            workingSpacingMm: options.workingSpacingMm ?? 6,
          }),
        },
      },
    }),
    ...inputs.flatMap((i) =>
      fileChunks(i.file, `${i.inputId}.nii`).map((chunk) =>
        encode({ msg: { $case: 'chunk', value: { inputId: i.inputId, chunk } } }),
      ),
    ),
  ];
  const onProgress = options.onProgress;
  // RegisterResponse field 1 (`progress`) starts with tag byte 0x0a, field 6 (`done`) with 0x32.
  const isDone = (b: Buffer): boolean => {
    if (onProgress && b[0] === 0x0a) {
      const m = register.RegisterResponse.decode(b).msg;
      if (m?.$case === 'progress') onProgress(m.value);
    }
    return b[0] === 0x32;
  };
  const path = `/${register.RegisterServiceDefinition.fullName}/Register`;
  return {
    name: `Register MIND deformable ${dims.join('×')}`,
    unit: 'registration',
    call: (ctx) => streamedCall(client, path, messages, isDone, ctx),
  };
}

/**
 * A weighted mix: each call picks a scenario by weight from a fixed cycle (deterministic order,
 * so runs are repeatable). Units are counted per scenario's own unit.
 */
export function mixScenario(
  parts: readonly { readonly scenario: Scenario; readonly weight: number }[],
): Scenario {
  const cycle: Scenario[] = [];
  for (const p of parts) for (let i = 0; i < p.weight; i++) cycle.push(p.scenario);
  if (cycle.length === 0) throw new Error('a mix needs at least one scenario with a positive weight');
  return {
    name: `mix(${parts.map((p) => `${p.scenario.name}:${p.weight}`).join(', ')})`,
    unit: 'call',
    call: async (ctx) => {
      const outcome = await cycle[ctx.seq % cycle.length]!.call(ctx);
      return { ...outcome, units: outcome.code === 'OK' ? 1 : 0 };
    },
  };
}
