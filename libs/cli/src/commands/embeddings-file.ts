import { common, type AnalysisResult } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { isDType, writeSafetensors, type ChunkedTensor, type DType } from '@curia/tensors';

/** One requested output as `--out` stored it. */
export interface SavedOutput {
  /** Tensor name in the file: the output's name as given to `--embeddings`. */
  readonly name: string;
  /** `[slices, ...per-slice shape]`, slice-major. */
  readonly shape: readonly number[];
  readonly dtype: DType;
}

/** What `curia analyze --out` wrote. */
export interface EmbeddingsFile {
  readonly path: string;
  readonly slices: number;
  readonly outputs: readonly SavedOutput[];
}

const i32Bytes = (values: readonly number[]): Uint8Array => new Uint8Array(Int32Array.from(values).buffer);

/**
 * Writes the embeddings of an analysis to a safetensors file: one tensor per requested output
 * (`names[i]` answers request index i), its slices stacked in canonical order (inferior →
 * superior), plus `canonical_index` and `input_slice_index` (I32, one per row) mapping rows to
 * slices. `__metadata__` names the model, its sha256, whether its weights are demo weights, and
 * the input axis. The wire bytes are written as received, slice by slice, without a stacked copy.
 */
export async function writeEmbeddingsFile(
  path: string,
  r: AnalysisResult,
  names: readonly string[],
): Promise<EmbeddingsFile> {
  const rows = [...r.embeddings].sort(
    (a, b) => (a.mapping?.canonicalIndex ?? 0) - (b.mapping?.canonicalIndex ?? 0),
  );
  const tensors: [string, ChunkedTensor][] = names.map((name, i) => {
    const pieces = rows.map((e) => e.features.find((f) => f.requestIndex === i)?.tensor);
    const first = pieces[0];
    const dtype = first ? common.DType[first.dtype] : 'F32';
    if (!dtype || !isDType(dtype)) {
      throw new CuriaError('INTERNAL', `the gateway sent output '${name}' with no concrete dtype`);
    }
    const shape = first?.shape ?? [];
    const chunks = pieces.map((t, k) => {
      if (!t || t.dtype !== first?.dtype || t.shape.join() !== shape.join()) {
        throw new CuriaError(
          'INTERNAL',
          `the gateway sent output '${name}' of slice ${rows[k]?.mapping?.canonicalIndex} missing or unlike the others`,
        );
      }
      return t.data;
    });
    return [name, { dtype, shape: [rows.length, ...shape], chunks }];
  });
  const mapping = (pick: (m: common.SliceMapping) => number): ChunkedTensor => ({
    dtype: 'I32',
    shape: [rows.length],
    chunks: [i32Bytes(rows.map((e) => (e.mapping ? pick(e.mapping) : -1)))],
  });
  const s = r.summary;
  await writeSafetensors(
    path,
    [
      ...tensors,
      ['canonical_index', mapping((m) => m.canonicalIndex)],
      ['input_slice_index', mapping((m) => m.inputSliceIndex)],
    ],
    {
      format: 'curia-embeddings',
      layout: 'slice-major: row k of every output is slice canonical_index[k]',
      outputs: names.join(','),
      model: s?.model ? `${s.model.name}@${s.model.version}` : '',
      model_sha256: s?.model?.sha256 ?? '',
      demo_weights: String(s?.demoWeights ?? false),
      input_axis: String(rows[0]?.mapping?.inputAxis ?? ''),
    },
  );
  return {
    path,
    slices: rows.length,
    outputs: tensors.map(([name, t]) => ({ name, shape: t.shape, dtype: t.dtype })),
  };
}
