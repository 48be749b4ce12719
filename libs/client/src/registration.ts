import type { common } from '@curia/proto';
import { register } from '@curia/proto';

import { concatBytes, fileChunksOf, onEachMessage, type StudyFile } from './streams.js';

/** One input of a Register call: its declaration (no source) and either its local files or a ref. */
export interface RegisterInputFiles {
  readonly input: Omit<Parameters<typeof register.RegisterInput.fromPartial>[0], 'source'>;
  /** Files uploaded for this input (a NIfTI file, or a DICOM series). */
  readonly files?: readonly StudyFile[];
  /** Or a volume the server reads itself. */
  readonly ref?: common.VolumeRef;
}

/**
 * The Register request stream: `start` declaring every input (streamed or by ref) and the options,
 * then every streamed input's files in chunks tagged with its id.
 */
export async function* registerUploadRequests(
  options: Parameters<typeof register.RegisterOptions.fromPartial>[0],
  inputs: readonly RegisterInputFiles[],
  chunkBytes = 1024 * 1024,
): AsyncGenerator<register.RegisterRequest> {
  const declared = inputs.map((i) =>
    register.RegisterInput.fromPartial({
      ...i.input,
      source: i.ref
        ? { $case: 'ref', value: i.ref }
        : {
            $case: 'streamed',
            value: {
              fileCount: i.files?.length ?? 0,
              totalBytes: (i.files ?? []).reduce((n, f) => n + f.bytes, 0),
            },
          },
    }),
  );
  yield {
    msg: {
      $case: 'start',
      value: { inputs: declared, options: register.RegisterOptions.fromPartial(options) },
    },
  };
  for (const i of inputs) {
    if (i.ref || !i.files) continue;
    for await (const chunk of fileChunksOf(i.files, chunkBytes)) {
      yield { msg: { $case: 'chunk', value: { inputId: i.input.inputId ?? '', chunk } } };
    }
  }
}

/** A file or slab output of a registration, reassembled. */
export interface WarpedResult {
  /** NIfTI bytes (WARPED_FORMAT_NIFTI), else empty. */
  nifti: Uint8Array;
  fileName: string;
  /** Slabs (WARPED_FORMAT_TENSOR_SLABS) in arrival order. */
  readonly slabs: register.FixedGridSlab[];
}

/** Everything a Register call returned, collected; files are reassembled. */
export interface RegistrationResult {
  geometry: register.RegistrationGeometry | undefined;
  transform: register.RegistrationTransform | undefined;
  /** Displacement slabs (DISPLACEMENT_FORMAT_SLABS), in arrival order. */
  readonly displacementSlabs: register.FixedGridSlab[];
  readonly inverseSlabs: register.FixedGridSlab[];
  /** displacement.nii.gz bytes (DISPLACEMENT_FORMAT_NIFTI), else empty. */
  displacementNifti: Uint8Array;
  inverseNifti: Uint8Array;
  /** Warped outputs by input id. */
  readonly warped: Map<string, WarpedResult>;
  summary: register.RegisterSummary | undefined;
}

/** Reads a Register response stream to the end, reporting progress events as they come. */
export async function collectRegistration(
  responses: AsyncIterable<register.RegisterResponse>,
  onProgress?: (p: common.Progress) => void,
): Promise<RegistrationResult> {
  const out: RegistrationResult = {
    geometry: undefined,
    transform: undefined,
    displacementSlabs: [],
    inverseSlabs: [],
    displacementNifti: new Uint8Array(0),
    inverseNifti: new Uint8Array(0),
    warped: new Map(),
    summary: undefined,
  };
  const field: Uint8Array[] = [];
  const inverse: Uint8Array[] = [];
  const warpedParts = new Map<string, Uint8Array[]>();
  const warpedOf = (id: string): WarpedResult => {
    let w = out.warped.get(id);
    if (!w) {
      w = { nifti: new Uint8Array(0), fileName: '', slabs: [] };
      out.warped.set(id, w);
      warpedParts.set(id, []);
    }
    return w;
  };
  await onEachMessage(responses, {
    progress: (p) => onProgress?.(p),
    geometry: (g) => (out.geometry = g),
    transform: (t) => (out.transform = t),
    displacement: (d) => d.slab && out.displacementSlabs.push(d.slab),
    inverseDisplacement: (d) => d.slab && out.inverseSlabs.push(d.slab),
    displacementNiftiChunk: (c) => field.push(c.data),
    inverseDisplacementNiftiChunk: (c) => inverse.push(c.data),
    warped: (w) => {
      const r = warpedOf(w.inputId);
      if (w.payload?.$case === 'niftiChunk') {
        warpedParts.get(w.inputId)!.push(w.payload.value.data);
        r.fileName = w.payload.value.fileName || r.fileName;
      } else if (w.payload?.$case === 'slab') {
        r.slabs.push(w.payload.value);
      }
    },
    done: (d) => (out.summary = d),
  });
  out.displacementNifti = concatBytes(field);
  out.inverseNifti = concatBytes(inverse);
  for (const [id, parts] of warpedParts) out.warped.get(id)!.nifti = concatBytes(parts);
  return out;
}
