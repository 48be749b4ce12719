import { CuriaError, isCuriaError } from '@curia/errors';
import { checkStudyId, UploadAccumulator } from '@curia/kit';
import { common, register } from '@curia/proto';
import { gridCornerDistanceMm, openAllowedRef, openVolume, type Volume } from '@curia/volume';

/** Limits of the inputs of one Register call. */
export interface InputLimits {
  /** Bytes streamed over all inputs. */
  readonly maxUploadBytes: number;
  /** Files of one streamed input (a DICOM series). */
  readonly maxFiles: number;
  /** Stored voxel bytes of one input volume. */
  readonly maxVoxelBytes: number;
  /** Directories `file://` refs may point into (empty: refs refused). */
  readonly allowedRoots: readonly string[];
}

/** One input, opened. */
export interface OpenedInput {
  readonly input: register.RegisterInput;
  /** Position in `start.inputs` (for messages). */
  readonly index: number;
  readonly volume: Volume;
  /** A streamed input's files as received (forwarded to Preprocess for Curia features). */
  readonly files?: readonly { readonly name: string; readonly data: Uint8Array }[] | undefined;
}

/** The inputs of a call by role. */
export interface RegisterInputs {
  readonly fixed: OpenedInput;
  readonly moving: OpenedInput;
  readonly movingLabels: readonly OpenedInput[];
  readonly fixedLabels: readonly OpenedInput[];
  readonly fixedMask: OpenedInput | undefined;
}

const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** Smallest extent along every axis of a volume to register (a 2D image or a slab is refused). */
export const MIN_VOLUME_DIM = 4;

/** Checks the declared inputs (ids, roles, sources) before any byte is read. */
export function checkDeclaredInputs(start: register.RegisterStart): void {
  const ids = new Set<string>();
  const count = (role: register.InputRole) => start.inputs.filter((i) => i.role === role).length;
  start.inputs.forEach((inp, i) => {
    const f = `inputs[${i}]`;
    if (!ID_RE.test(inp.inputId))
      throw new CuriaError('INVALID_ARGUMENT', `${f}.input_id must be 1..64 characters of [A-Za-z0-9._-]`);
    if (ids.has(inp.inputId))
      throw new CuriaError('INVALID_ARGUMENT', `${f}.input_id '${inp.inputId}' is used twice`);
    ids.add(inp.inputId);
    if (inp.role === register.InputRole.UNSPECIFIED || !(inp.role in register.InputRole)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${f}.role must be FIXED, MOVING, MOVING_LABEL_MAP, FIXED_LABEL_MAP or FIXED_MASK`,
      );
    }
    if (!inp.source) throw new CuriaError('INVALID_ARGUMENT', `${f}.source is required (ref or streamed)`);
    if (inp.header?.studyId) checkStudyId(inp.header.studyId);
  });
  if (count(register.InputRole.FIXED) !== 1 || count(register.InputRole.MOVING) !== 1) {
    throw new CuriaError('INVALID_ARGUMENT', 'inputs: exactly one FIXED and one MOVING input are required');
  }
  if (count(register.InputRole.FIXED_MASK) > 1)
    throw new CuriaError('INVALID_ARGUMENT', 'inputs: at most one FIXED_MASK');
}

/**
 * Reads every input: streamed inputs from the request stream (chunks tagged with their input id,
 * one input after another), refs from the allowed roots; then opens each as a volume and checks the
 * grids (label maps and masks on their image's grid, volumes at least {@link MIN_VOLUME_DIM} voxels
 * along every axis). INVALID_ARGUMENT names the input; RESOURCE_EXHAUSTED names the limit.
 */
export async function readInputs(
  start: register.RegisterStart,
  rest: AsyncIterator<register.RegisterRequest>,
  limits: InputLimits,
  signal: AbortSignal,
  /** Keep streamed inputs' files (Curia features forward them to Preprocess). */
  keepFiles = false,
): Promise<RegisterInputs> {
  checkDeclaredInputs(start);
  const uploads = new Map<string, UploadAccumulator>();
  let total = 0;
  for (const [i, inp] of start.inputs.entries()) {
    if (inp.source?.$case !== 'streamed') continue;
    const acc = new UploadAccumulator({
      maxBytes: limits.maxUploadBytes,
      maxFiles: limits.maxFiles,
      maxBytesSetting: 'CURIA_REGISTER_MAX_UPLOAD_BYTES',
      maxFilesSetting: 'CURIA_REGISTER_MAX_UPLOAD_FILES',
    });
    acc.checkAnnounced(inp.source.value);
    total += inp.source.value.totalBytes;
    if (total > limits.maxUploadBytes) {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `inputs[${i}]: the inputs announce more than ${limits.maxUploadBytes} bytes (CURIA_REGISTER_MAX_UPLOAD_BYTES)`,
      );
    }
    uploads.set(inp.inputId, acc);
  }
  const finished = new Set<string>();
  let current: string | undefined;
  let received = 0;
  for (;;) {
    if (signal.aborted) throw new CuriaError('CANCELLED', 'Register was cancelled');
    const next = await rest.next();
    if (next.done) break;
    const m = next.value.msg;
    if (m?.$case !== 'chunk')
      throw new CuriaError('INVALID_ARGUMENT', 'after `start`, every Register message must be a `chunk`');
    const { inputId, chunk } = m.value;
    const acc = uploads.get(inputId);
    if (!acc)
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `chunk.input_id '${inputId}' is not a streamed input of start.inputs`,
      );
    if (finished.has(inputId))
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `chunk.input_id '${inputId}': its chunks must all come before the next input's`,
      );
    if (current !== undefined && current !== inputId) finished.add(current);
    current = inputId;
    if (!chunk) throw new CuriaError('INVALID_ARGUMENT', `chunk for '${inputId}' carries no data`);
    received += chunk.data.length;
    if (received > limits.maxUploadBytes) {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `the inputs exceed ${limits.maxUploadBytes} bytes (CURIA_REGISTER_MAX_UPLOAD_BYTES)`,
      );
    }
    acc.add(chunk);
  }
  const opened = await Promise.all(
    start.inputs.map(async (inp, index): Promise<OpenedInput> => {
      const field = `inputs[${index}] '${inp.inputId}'`;
      const options = { signal, limits: { maxVoxelBytes: limits.maxVoxelBytes } };
      let volume: Volume;
      let files: { name: string; data: Uint8Array }[] | undefined;
      try {
        if (inp.source?.$case === 'ref') {
          if (limits.allowedRoots.length === 0) {
            throw new CuriaError(
              'FAILED_PRECONDITION',
              'ref sources are disabled: set CURIA_REGISTER_ALLOWED_ROOTS, or stream the files',
            );
          }
          // Missing, outside the roots, unreadable or not a file/series directory: one NOT_FOUND.
          const ref = await openAllowedRef(inp.source.value.uri, limits.allowedRoots, {
            field: 'source.ref.uri',
            directories: true,
          });
          volume = await openVolume({ kind: 'ref', ref }, options);
        } else {
          files = uploads.get(inp.inputId)!.finish();
          volume =
            files.length === 1
              ? await openVolume({ kind: 'bytes', data: files[0]!.data, filename: files[0]!.name }, options)
              : await openVolume({ kind: 'files', files }, options);
        }
      } catch (e) {
        if (isCuriaError(e)) throw new CuriaError(e.code, `${field}: ${e.message}`, { cause: e });
        throw e;
      }
      const dims = volume.geometry.inputDims;
      if (dims.some((d) => d < MIN_VOLUME_DIM)) {
        throw new CuriaError(
          'INVALID_ARGUMENT',
          `${field} has dims [${dims.join(', ')}]: registration needs volumes of at least ${MIN_VOLUME_DIM} voxels along every axis (not 2D images)`,
        );
      }
      return { input: inp, index, volume, files: keepFiles ? files : undefined };
    }),
  );
  const role = (r: register.InputRole) => opened.filter((o) => o.input.role === r);
  const fixed = role(register.InputRole.FIXED)[0]!;
  const moving = role(register.InputRole.MOVING)[0]!;
  const sameGrid = (o: OpenedInput, on: OpenedInput, what: string): void => {
    const a = o.volume.geometry;
    const b = on.volume.geometry;
    const dims = a.inputDims.some((d, i) => d !== b.inputDims[i]);
    if (
      dims ||
      gridCornerDistanceMm(a.inputAffine, a.inputFrame, b.inputAffine, b.inputFrame, b.inputDims) > 1e-3
    ) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `inputs[${o.index}] '${o.input.inputId}' is not on the ${what} grid (dims and voxel centres must match within 1e-3 mm)`,
      );
    }
  };
  const movingLabels = role(register.InputRole.MOVING_LABEL_MAP);
  const fixedLabels = role(register.InputRole.FIXED_LABEL_MAP);
  const fixedMask = role(register.InputRole.FIXED_MASK)[0];
  for (const l of movingLabels) sameGrid(l, moving, 'moving');
  for (const l of [...fixedLabels, ...(fixedMask ? [fixedMask] : [])]) sameGrid(l, fixed, 'fixed');
  return { fixed, moving, movingLabels, fixedLabels, fixedMask };
}

/** The input geometry as the contract's VolumeGeometry. */
export function volumeGeometryOf(v: Volume): common.VolumeGeometry {
  const g = v.geometry;
  return {
    dims: [...g.inputDims],
    spacingMm: [...g.inputSpacing],
    affine: {
      m: [...g.inputAffine],
      frame: g.inputFrame === 'RAS' ? common.CoordinateFrame.RAS : common.CoordinateFrame.LPS,
    },
    axcodes: g.inputAxcodes,
  };
}
