import { CuriaError } from '@curia/errors';
import {
  curiaTracer,
  errorReason,
  UploadAccumulator,
  type MemoryBudget,
  type Release,
  type UploadBufferPool,
} from '@curia/kit';
import { common, SLICE_ENVELOPE_ROOM, type preprocess } from '@curia/proto';
import {
  openVolume,
  preprocessHeldBytes,
  preprocessSlices,
  preprocessSlicesOnPool,
  openAllowedRef,
  type AllowedRef,
  resolveSelection,
  type PreprocessSpec,
  type SliceSelection,
  type SlicePool,
  type Volume,
  type VolumeAdmission,
  type VolumeSource,
} from '@curia/volume';

import { resolveBundleSpec } from './bundles.js';
import { canonicalGeometryToProto, pooledSliceToProto, sliceToProto, specToProto } from './codec.js';
import type { PreprocessMetrics } from './metrics.js';
import { checkStudyId, outputDType, sliceSelection, withClip, type OutputDType } from './options.js';

/** What the Preprocess handler needs from the service. */
export interface PreprocessDeps {
  readonly allowedRoots: readonly string[];
  readonly bundlesDir: string | undefined;
  readonly maxUploadBytes: number;
  readonly maxUploadFiles: number;
  /** Upload buffers reused between calls (none: every upload allocates). */
  readonly uploadPool?: UploadBufferPool;
  readonly metrics: PreprocessMetrics;
  /** Threads computing the slices; null computes them on the event loop. */
  readonly pool?: SlicePool | null;
  /** Slices computed ahead of the transport when `pool` is set (default: the pool's). */
  readonly prefetch?: number | undefined;
  /**
   * The process's memory budget: a call takes what its volume will decode to (declared dims ×
   * dtype, plus the slices in flight) once the header is read and before any voxel is allocated,
   * and gives it back when the call ends. None: no admission by size (tests, benches).
   */
  readonly memory?: MemoryBudget;
  /** Called once per successful request with loggable facts only (opaque study id, counts). */
  readonly onDone?: (facts: { studyId: string; slices: number; files: number; bytes: number }) => void;
}

type Request = preprocess.PreprocessRequest;
type Response = preprocess.PreprocessResponse;

const MAX_URI_BYTES = 4096;
const PROGRESS_INTERVAL_MS = 500;

function cancelled(): CuriaError {
  return new CuriaError('CANCELLED', 'the call was cancelled');
}

/**
 * Validates a `ref` source and opens it under the allowed roots. Missing, outside-the-roots,
 * unreadable and non-regular refs all get the one NOT_FOUND of `refNotReadable` (no filesystem
 * oracle); refs disabled keeps its own FAILED_PRECONDITION, which says nothing about the files.
 */
async function resolveRef(uri: string, roots: readonly string[]): Promise<AllowedRef> {
  if (uri.length === 0) throw new CuriaError('INVALID_ARGUMENT', 'start.ref.uri is empty');
  if (Buffer.byteLength(uri) > MAX_URI_BYTES) {
    throw new CuriaError('INVALID_ARGUMENT', `start.ref.uri is longer than ${MAX_URI_BYTES} bytes`);
  }
  if (/^(dicomweb|https?):/i.test(uri)) {
    throw new CuriaError(
      'UNIMPLEMENTED',
      'start.ref.uri: only file:// refs are supported; stream the files instead',
    );
  }
  if (roots.length === 0) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      'start.ref sources are disabled on this server: set CURIA_PREPROCESS_ALLOWED_ROOTS to a comma list of directories to allow file:// refs under them, or send the file(s) as a streamed source',
    );
  }
  return openAllowedRef(uri, roots, { field: 'start.ref.uri', directories: true });
}

/**
 * Watches the request stream after a `ref` start: any further message is a protocol error. It
 * never blocks the response; `error()` reports what it saw.
 */
function watchNoMoreMessages(it: AsyncIterator<Request>): { error: () => CuriaError | null } {
  let err: CuriaError | null = null;
  it.next().then(
    (r) => {
      if (!r.done) {
        err = new CuriaError(
          'INVALID_ARGUMENT',
          'a start.ref source takes no further messages (no chunks, no second start)',
        );
      }
    },
    () => undefined,
  );
  return { error: () => err };
}

/**
 * The PreprocessService.Preprocess bidi handler: reads `start` (+ chunks), opens the volume,
 * then yields `geometry`, one `slice` per selected canonical slice (computed only when the
 * previous one has been handed to the transport, so memory stays bounded) and `done`.
 */
export async function* handlePreprocess(
  requests: AsyncIterable<Request>,
  signal: AbortSignal,
  deps: PreprocessDeps,
): AsyncGenerator<Response, void, undefined> {
  let settled = false;
  const call: CallResources = { upload: null, memory: [], uploadReserved: 0 };
  try {
    yield* run(requests, signal, deps, call);
    settled = true;
  } catch (e) {
    settled = true;
    deps.metrics.errors.inc({ reason: signal.aborted ? 'CANCELLED' : errorReason(e) });
    throw e;
  } finally {
    // The transport closes the generator (return()) when the caller cancels mid-stream.
    if (!settled) deps.metrics.errors.inc({ reason: 'CANCELLED' });
    // The slices are done (or closed): the volume no longer reads the upload's buffer.
    call.upload?.recycle();
    for (const release of call.memory.splice(0)) release();
  }
}

/** What a call holds until it ends, for {@link handlePreprocess} to release. */
interface CallResources {
  upload: UploadAccumulator | null;
  /** Its shares of the memory budget. */
  readonly memory: Release[];
  /** Upload bytes taken from the budget so far. */
  uploadReserved: number;
}

/** Takes upload bytes from the memory budget until `need` are covered, before they are copied. */
async function reserveUpload(
  need: number,
  deps: PreprocessDeps,
  call: CallResources,
  signal: AbortSignal,
): Promise<void> {
  if (!deps.memory || need <= call.uploadReserved) return;
  call.memory.push(
    await deps.memory.acquire(need - call.uploadReserved, { what: `an upload of ${need} bytes`, signal }),
  );
  call.uploadReserved = need;
}

/** Slices one call has in flight at once (the pool's prefetch, else one). */
function slicesInFlight(deps: PreprocessDeps): number {
  return deps.pool ? (deps.prefetch ?? Math.max(2, 2 * deps.pool.size)) : 1;
}

/** Takes the bytes `v` will hold from the memory budget (waiting for room or refusing). */
async function admitVolume(
  v: VolumeAdmission,
  deps: PreprocessDeps,
  call: CallResources,
  signal: AbortSignal,
): Promise<void> {
  if (!deps.memory) return;
  const bytes = preprocessHeldBytes(v, slicesInFlight(deps));
  call.memory.push(
    await deps.memory.acquire(bytes, {
      what: `${v.format === 'nifti' ? 'NIfTI' : 'DICOM'} volume ${v.dims.join('x')} ${v.voxelType}`,
      signal,
    }),
  );
}

async function* run(
  requests: AsyncIterable<Request>,
  signal: AbortSignal,
  deps: PreprocessDeps,
  call: CallResources,
): AsyncGenerator<Response, void, undefined> {
  const tracer = curiaTracer();
  const it = requests[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) throw new CuriaError('INVALID_ARGUMENT', 'the request stream ended before a start message');
  const msg = first.value.msg;
  if (msg?.$case !== 'start') {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `the first message must be start, got ${msg?.$case ?? 'an empty message'}`,
    );
  }
  const start = msg.value;
  const header = start.header;
  const studyId = header?.studyId ?? '';
  checkStudyId(studyId);
  const opts = start.options;
  const dtype = outputDType(opts?.outputDtype ?? common.DType.UNSPECIFIED);
  const selection = sliceSelection(opts?.selection);
  const resolved = await resolveBundleSpec(opts?.modelBundle ?? '', deps.bundlesDir, signal);
  const spec = withClip(resolved.spec, opts?.clipBelowAir);
  const source = start.source;
  if (!source) throw new CuriaError('INVALID_ARGUMENT', 'start.source is required: set ref or streamed');

  const timings: common.Timing[] = [];
  let volumeSource: VolumeSource;
  let bytesReceived = 0;
  let fileCount = 0;
  let refWatch: { error: () => CuriaError | null } | null = null;
  if (source.$case === 'ref') {
    volumeSource = { kind: 'ref', ref: await resolveRef(source.value.uri, deps.allowedRoots) };
    refWatch = watchNoMoreMessages(it);
  } else {
    const span = tracer.startSpan('preprocess.upload');
    const t0 = performance.now();
    const acc = new UploadAccumulator(
      {
        maxBytes: deps.maxUploadBytes,
        maxFiles: deps.maxUploadFiles,
        maxBytesSetting: 'CURIA_PREPROCESS_MAX_UPLOAD_BYTES',
        maxFilesSetting: 'CURIA_PREPROCESS_MAX_UPLOAD_FILES',
      },
      deps.uploadPool,
    );
    call.upload = acc;
    acc.checkAnnounced(source.value);
    // An announced single file gets its buffer at once: take it up front.
    await reserveUpload(acc.preallocatedBytes, deps, call, signal);
    let lastProgress = t0;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        if (signal.aborted) throw cancelled();
        const m = r.value.msg;
        if (m?.$case === 'start')
          throw new CuriaError('INVALID_ARGUMENT', 'start was sent twice; send it once, first');
        if (m?.$case !== 'chunk')
          throw new CuriaError('INVALID_ARGUMENT', 'a request message has neither start nor chunk');
        // Past the upload cap, acc.add refuses with the cap's message.
        const need = Math.min(acc.bytesReceived + m.value.data.length, deps.maxUploadBytes);
        await reserveUpload(need, deps, call, signal);
        acc.add(m.value);
        deps.metrics.uploadBytes.inc(m.value.data.length);
        const now = performance.now();
        if (now - lastProgress >= PROGRESS_INTERVAL_MS) {
          lastProgress = now;
          yield progress('upload', acc.fileCount, source.value.fileCount);
        }
      }
      const files = acc.finish();
      bytesReceived = acc.bytesReceived;
      fileCount = files.length;
      volumeSource = { kind: 'files', files };
      span.setAttributes({ 'curia.files': fileCount, 'curia.bytes': bytesReceived });
    } finally {
      span.end();
    }
    timings.push({ stage: 'upload', millis: performance.now() - t0 });
  }

  const decodeSpan = tracer.startSpan('preprocess.decode');
  const tDecode = performance.now();
  const stopDecode = deps.metrics.decode.startTimer();
  let volume: Volume;
  try {
    volume = await openVolume(volumeSource, {
      signal,
      volumeIndex: header?.volumeIndex ?? 0,
      ...(header?.seriesInstanceUid ? { seriesInstanceUid: header.seriesInstanceUid } : {}),
      limits: { maxFiles: deps.maxUploadFiles },
      admit: (v) => admitVolume(v, deps, call, signal),
    });
  } finally {
    stopDecode();
    decodeSpan.end();
  }
  volumeSource = { kind: 'files', files: [] }; // drop the upload: the volume holds what it needs
  timings.push({ stage: 'decode', millis: performance.now() - tDecode });
  checkFormat(header?.format ?? common.VolumeFormat.UNSPECIFIED, volume);

  const g = volume.geometry;
  const indices = resolveSelection(selection, volume.sliceCount);
  yield {
    msg: {
      $case: 'geometry',
      value: {
        geometry: canonicalGeometryToProto(g),
        numCanonicalSlices: volume.sliceCount,
        selectedCount: indices.length,
        spec: specToProto(resolved.bundle, spec, dtype),
      },
    },
  };

  const sliceSpan = tracer.startSpan('preprocess.slices', {
    attributes: { 'curia.selected': indices.length },
  });
  let sent = 0;
  let computeMs = 0;
  const slices = sliceMessages(volume, spec, selection, dtype, signal, deps);
  try {
    for (;;) {
      const t0 = performance.now();
      const stop = deps.metrics.slice.startTimer();
      const r = await slices.next();
      if (r.done) break;
      const out = r.value;
      stop();
      deps.metrics.slices.inc();
      computeMs += performance.now() - t0;
      const protocolError = refWatch?.error();
      if (protocolError) throw protocolError;
      yield { msg: { $case: 'slice', value: out } };
      sent++;
    }
  } finally {
    await slices.return(undefined);
    sliceSpan.setAttribute('curia.sent', sent);
    sliceSpan.end();
  }
  const protocolError = refWatch?.error();
  if (protocolError) throw protocolError;
  timings.push({ stage: 'slices', millis: computeMs });
  deps.onDone?.({ studyId, slices: sent, files: fileCount, bytes: bytesReceived });
  yield { msg: { $case: 'done', value: { slicesSent: sent, bytesReceived, timings } } };
}

/**
 * The selected slices as `slice` messages. With a pool, the next slices compute on its threads
 * (already in the output dtype, laid out for in-place framing) while the caller's loop yields and
 * the transport writes; closing the generator drops the slices in flight.
 */
async function* sliceMessages(
  volume: Volume,
  spec: PreprocessSpec,
  selection: SliceSelection,
  dtype: OutputDType,
  signal: AbortSignal,
  deps: PreprocessDeps,
): AsyncGenerator<preprocess.PreprocessedSlice, void, undefined> {
  const g = volume.geometry;
  const [h, w] = spec.targetSize;
  if (!deps.pool) {
    for await (const s of preprocessSlices(volume, { spec, selection, signal })) {
      yield sliceToProto(g, s, h, w, dtype);
    }
    return;
  }
  const pooled = preprocessSlicesOnPool(volume, deps.pool, {
    spec,
    selection,
    signal,
    layout: { dtype, ...SLICE_ENVELOPE_ROOM },
    ...(deps.prefetch ? { prefetch: deps.prefetch } : {}),
  });
  for await (const s of pooled) yield pooledSliceToProto(g, s, h, w);
}

function progress(stage: string, done: number, total: number): Response {
  return { msg: { $case: 'progress', value: { stage, done, total, message: '' } } };
}

function checkFormat(format: common.VolumeFormat, volume: Volume): void {
  const want =
    format === common.VolumeFormat.NIFTI ? 'nifti' : format === common.VolumeFormat.DICOM ? 'dicom' : null;
  if (want && want !== volume.info.format) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `header.format is ${want.toUpperCase()} but the input is ${volume.info.format.toUpperCase()}; use VOLUME_FORMAT_AUTO or send the right file`,
    );
  }
}
