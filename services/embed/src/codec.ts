import { decodeWireTensor, MAX_FEATURE_OUTPUTS, wireFloats } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { MAX_PROJECTION_CHANNELS, type EmbedOutputName } from '@curia/model';
import { common, type embed } from '@curia/proto';
import { firstNonFinite, fromFloat32 } from '@curia/tensors';

/** A projected_tokens request's projection, decoded and checked once per stream. */
export interface TokenProjection {
  /** (D, C) row-major, column c = direction c; finite; owned (outlives the start message). */
  readonly basis: Float32Array;
  /** (D), finite, owned; absent = zero. */
  readonly mean?: Float32Array;
  /** C, in [1, MAX_PROJECTION_CHANNELS]. */
  readonly channels: number;
}

/** One requested feature, validated. */
export interface OutputSpec {
  readonly kind:
    'cls' | 'patch_tokens' | 'mask_pooled' | 'avg_pooled_tokens' | 'last_hidden_state' | 'projected_tokens';
  /** Pool/return the tokens before the final LayerNorm. */
  readonly prenorm: boolean;
  /** avg_pooled_tokens window in patches; 0 = global mean. */
  readonly kernelSize: number;
  readonly dtype: 'F32' | 'F16';
  /** projected_tokens only: what the patch tokens are projected onto. */
  readonly projection?: TokenProjection;
}

/** Shape facts of the model a stream runs on. */
export interface ModelShape {
  readonly imageSize: number;
  /** Patch grid side G. */
  readonly grid: number;
  /** Channels per token (D, the hidden size). */
  readonly hidden: number;
}

/** A validated EmbedStart. */
export interface StreamPlan {
  readonly outputs: readonly OutputSpec[];
  /** ORT outputs the stream needs (union over its outputs). */
  readonly ortOutputs: readonly EmbedOutputName[];
  readonly needsMask: boolean;
}

function featureDType(d: common.DType, i: number): 'F32' | 'F16' {
  if (d === common.DType.UNSPECIFIED || d === common.DType.F32) return 'F32';
  if (d === common.DType.F16) return 'F16';
  throw new CuriaError(
    'INVALID_ARGUMENT',
    `start.outputs[${i}].dtype must be D_TYPE_F32 or D_TYPE_F16 (got ${common.dTypeToJSON(d)})`,
  );
}

/**
 * Decodes and checks a projected_tokens request against the model's hidden size D: basis F32 of
 * shape (D, C) with 1 ≤ C ≤ {@link MAX_PROJECTION_CHANNELS}, mean F32 (D) or unset, all values
 * finite. INVALID_ARGUMENT names `field` (`start.outputs[i].projected_tokens`) and the sub-field.
 */
export function decodeProjection(
  p: common.ProjectedTokensFeature,
  field: string,
  hidden: number,
): TokenProjection {
  const at = `${field}.basis`;
  // dtype, dimensions and byte length first (no copy), then the shape against the model.
  const { shape } = decodeWireTensor(p.basis, at, { dtypes: ['F32'] });
  const want = `(D, C) = (${hidden}, C), D the model's hidden size and 1 ≤ C ≤ ${MAX_PROJECTION_CHANNELS}`;
  if (shape.length !== 2) {
    throw new CuriaError('INVALID_ARGUMENT', `${at}.shape must be ${want} (got [${shape.join(', ')}])`);
  }
  const [d, c] = shape as [number, number];
  if (d !== hidden) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${at}.shape[0] must be the model's hidden size ${hidden} (got ${d})`,
    );
  }
  if (c < 1 || c > MAX_PROJECTION_CHANNELS) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `${at}.shape[1] (channels C) must be between 1 and ${MAX_PROJECTION_CHANNELS} (got ${c})`,
    );
  }
  const basis = wireFloats(p.basis, at, { dtypes: ['F32'], shape: [hidden, c], finite: true, own: true });
  if (!p.mean) return { basis, channels: c };
  const mean = wireFloats(p.mean, `${field}.mean`, {
    dtypes: ['F32'],
    shape: [hidden],
    finite: true,
    own: true,
  });
  return { basis, mean, channels: c };
}

/** Validates the requested outputs of an EmbedStart against the model. */
export function planStream(start: embed.EmbedStart, shape: ModelShape): StreamPlan {
  const reqs = start.outputs;
  if (reqs.length === 0)
    throw new CuriaError('INVALID_ARGUMENT', 'start.outputs must request at least one feature');
  if (reqs.length > MAX_FEATURE_OUTPUTS) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `start.outputs has ${reqs.length} entries; at most ${MAX_FEATURE_OUTPUTS} are allowed`,
    );
  }
  const outputs = reqs.map((r, i): OutputSpec => {
    const dtype = featureDType(r.dtype, i);
    const k = r.kind;
    switch (k?.$case) {
      case 'cls':
        return { kind: 'cls', prenorm: k.value.prenorm, kernelSize: 0, dtype };
      case 'lastHiddenState':
        return { kind: 'last_hidden_state', prenorm: false, kernelSize: 0, dtype };
      case 'patchTokens':
        return { kind: 'patch_tokens', prenorm: k.value.prenorm, kernelSize: 0, dtype };
      case 'maskPooled':
        return { kind: 'mask_pooled', prenorm: k.value.prenorm, kernelSize: 0, dtype };
      case 'avgPooledTokens': {
        const ks = k.value.kernelSize;
        if (ks !== 0 && (ks > shape.grid || shape.grid % ks !== 0)) {
          throw new CuriaError(
            'INVALID_ARGUMENT',
            `start.outputs[${i}].avg_pooled_tokens.kernel_size ${ks} must divide the ${shape.grid}×${shape.grid} patch grid`,
          );
        }
        return { kind: 'avg_pooled_tokens', prenorm: k.value.prenorm, kernelSize: ks, dtype };
      }
      case 'projectedTokens': {
        const projection = decodeProjection(k.value, `start.outputs[${i}].projected_tokens`, shape.hidden);
        return { kind: 'projected_tokens', prenorm: k.value.prenorm, kernelSize: 0, dtype, projection };
      }
      default:
        throw new CuriaError('INVALID_ARGUMENT', `start.outputs[${i}].kind is not set`);
    }
  });
  const ort = new Set<EmbedOutputName>();
  for (const o of outputs) ort.add(o.prenorm ? 'last_block_prenorm' : 'last_hidden_state');
  return { outputs, ortOutputs: [...ort], needsMask: outputs.some((o) => o.kind === 'mask_pooled') };
}

/** Values one requested feature holds per slice. */
function featureValues(o: OutputSpec, shape: ModelShape, tokens: number): number {
  const g2 = shape.grid * shape.grid;
  switch (o.kind) {
    case 'cls':
    case 'mask_pooled':
      return shape.hidden;
    case 'last_hidden_state':
      return tokens * shape.hidden;
    case 'patch_tokens':
      return g2 * shape.hidden;
    case 'avg_pooled_tokens':
      return o.kernelSize === 0 ? shape.hidden : (g2 / (o.kernelSize * o.kernelSize)) * shape.hidden;
    case 'projected_tokens':
      return g2 * (o.projection?.channels ?? 0);
  }
}

/**
 * Bytes one slice of a stream holds from its arrival to its result being sent, taken from the
 * process's memory budget before the slice is read: the pixel message as sent (at most F32) and
 * its decoded F32 copy (S·S·4 each), its mask when the plan needs one, the token sequences the
 * batch run returns for it (T·D·4 per ORT output: last_hidden_state and/or last_block_prenorm),
 * and each requested feature computed in F32 and encoded in its dtype.
 */
export function sliceMemoryBytes(plan: StreamPlan, shape: ModelShape, tokens: number): number {
  const px = shape.imageSize * shape.imageSize;
  let bytes = px * (4 + 4) + (plan.needsMask ? px * 2 : 0);
  bytes += plan.ortOutputs.length * tokens * shape.hidden * 4;
  for (const o of plan.outputs) bytes += featureValues(o, shape, tokens) * (4 + (o.dtype === 'F32' ? 4 : 2));
  return bytes;
}

/** A slice ready for the batcher. */
export interface DecodedSlice {
  readonly sliceId: number;
  /** (C·S·S) floats, own buffer (safe to keep after the message is gone). */
  readonly pixels: Float32Array;
  /** S·S bytes, nonzero = inside; present when the stream requests a mask-pooled output. */
  readonly mask?: Uint8Array;
}

/**
 * Validates and decodes one EmbedSlice: pixels (1, S, S) F32/F16, finite; mask (S, S) U8/BOOL,
 * non-empty, when the plan needs it. Errors are INVALID_ARGUMENT naming slice_id and field.
 */
export function decodeSlice(slice: embed.EmbedSlice, plan: StreamPlan, shape: ModelShape): DecodedSlice {
  const id = slice.sliceId;
  const s = shape.imageSize;
  if (!slice.pixels) throw new CuriaError('INVALID_ARGUMENT', `slice ${id}: pixels is missing`);
  // Owned: the slice outlives the message its bytes are a view of.
  const pixels = wireFloats(slice.pixels, `slice ${id}: pixels`, {
    dtypes: ['F32', 'F16'],
    shape: [1, s, s],
    own: true,
  });
  const bad = firstNonFinite(pixels);
  if (bad >= 0) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `slice ${id}: pixels has a NaN or infinite value (row ${Math.floor(bad / s) % s}, column ${bad % s})`,
    );
  }
  if (!plan.needsMask) return { sliceId: id, pixels };
  if (!slice.mask) {
    throw new CuriaError(
      'INVALID_ARGUMENT',
      `slice ${id}: mask is missing but a mask_pooled output was requested`,
    );
  }
  const { dtype: mdtype, data: mask } = decodeWireTensor(slice.mask, `slice ${id}: mask`, {
    dtypes: ['U8', 'BOOL'],
    shape: [s, s],
    own: true,
  });
  let any = false;
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i]!;
    if (v !== 0) any = true;
    if (mdtype === 'BOOL' && v > 1) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `slice ${id}: mask is D_TYPE_BOOL but holds a value other than 0/1`,
      );
    }
  }
  if (!any) throw new CuriaError('INVALID_ARGUMENT', `slice ${id}: mask is empty (no pixel inside)`);
  return { sliceId: id, pixels, mask };
}

/** Wraps computed values as a wire Feature in the requested dtype. */
export function encodeFeature(
  index: number,
  values: Float32Array,
  shape: readonly number[],
  dtype: 'F32' | 'F16',
): common.Feature {
  const raw = fromFloat32(values, shape, dtype);
  return {
    requestIndex: index,
    tensor: {
      dtype: dtype === 'F32' ? common.DType.F32 : common.DType.F16,
      shape: [...raw.shape],
      data: raw.data,
    },
  };
}
