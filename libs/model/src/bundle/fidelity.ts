import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { CuriaError } from '@curia/errors';
import { readSafetensors, sharedDir, toFloat32 } from '@curia/tensors';
import { InferenceSession, Tensor } from 'onnxruntime-node';

import { numTokens, type Architecture } from '../architecture.js';
import { int8CpuFeatures } from '../cpu-features.js';
import { GRAPH_INPUT } from '../onnx/dinov2-graph.js';

/** Fidelity floors of a quantized bundle against the F32 bundle it derives from. */
export const FIDELITY_THRESHOLDS = {
  /** Smallest CLS-token cosine similarity over the calibration slices. */
  cls_cosine_min: 0.995,
  /** Mean patch-token cosine similarity over every patch token of every calibration slice. */
  patch_cosine_mean: 0.99,
} as const;

/** Shared preprocessed real CT used to calibrate when `../shared` is present. */
export const SHARED_CALIBRATION = 'reference/preprocess/example_ct_sm.safetensors';

/** Preprocessed slices (N, C, S, S) and where they came from. */
export interface CalibrationSet {
  readonly pixels: Float32Array;
  readonly count: number;
  readonly kind: 'shared_ct' | 'synthetic';
  readonly source: string;
}

/** How closely a quantized graph reproduces its F32 source on a calibration set. */
export interface FidelityReport {
  readonly calibration: CalibrationSet['kind'];
  readonly source: string;
  readonly slices: number;
  readonly cls_cosine_min: number;
  readonly patch_cosine_mean: number;
  /** Largest |difference| on last_hidden_state. */
  readonly max_abs_diff: number;
  readonly thresholds: typeof FIDELITY_THRESHOLDS;
  /** INT8-relevant CPU flags of the host that measured it (see `int8CpuFeatures`). */
  readonly host_int8_features: readonly string[] | null;
}

/** Cosine similarity of two equal-length vectors (1 when both are zero). */
export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return na === 0 && nb === 0 ? 1 : dot / Math.sqrt(na * nb);
}

/**
 * Token-level agreement of two `last_hidden_state` arrays (N, T, D): CLS cosine per slice, patch
 * cosine per token (registers skipped), and max |diff|.
 */
export function compareTokens(
  ref: Float32Array,
  got: Float32Array,
  layout: { readonly tokens: number; readonly hidden: number; readonly numRegisterTokens: number },
): { clsCosines: number[]; patchCosineMean: number; maxAbsDiff: number } {
  const { tokens, hidden: d, numRegisterTokens } = layout;
  const n = ref.length / (tokens * d);
  const clsCosines: number[] = [];
  let patchSum = 0;
  let patchCount = 0;
  let maxAbsDiff = 0;
  for (let i = 0; i < ref.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref[i]! - got[i]!));
  for (let s = 0; s < n; s++) {
    const row = (t: number, x: Float32Array): Float32Array =>
      x.subarray((s * tokens + t) * d, (s * tokens + t + 1) * d);
    clsCosines.push(cosine(row(0, ref), row(0, got)));
    for (let t = 1 + numRegisterTokens; t < tokens; t++) {
      patchSum += cosine(row(t, ref), row(t, got));
      patchCount++;
    }
  }
  return { clsCosines, patchCosineMean: patchSum / patchCount, maxAbsDiff };
}

/** Deterministic phantom-like slices: a z-scored body ellipse with organ-like blobs and texture. */
function syntheticSlices(arch: Architecture, count: number): Float32Array {
  const s = arch.image_size;
  const c = arch.num_channels;
  const out = new Float32Array(count * c * s * s);
  for (let k = 0; k < count; k++) {
    const slice = new Float32Array(s * s);
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        const u = (x - s / 2) / (s * 0.42);
        const v = (y - s / 2) / (s * 0.32);
        let hu = u * u + v * v <= 1 ? 40 : -1000;
        const blob = (cx: number, cy: number, r: number): boolean =>
          (x / s - cx) ** 2 + (y / s - cy) ** 2 <= r * r;
        if (hu > -1000) {
          if (blob(0.38 + 0.02 * k, 0.45, 0.08)) hu = 60; // liver-like
          if (blob(0.62, 0.5 - 0.02 * k, 0.04)) hu = 30; // kidney-like
          if (blob(0.5, 0.62, 0.03)) hu = 700; // vertebra-like
          hu += 15 * Math.sin(x * 0.37 + k) * Math.cos(y * 0.23);
        }
        slice[y * s + x] = hu;
      }
    }
    let mean = 0;
    for (const v of slice) mean += v;
    mean /= slice.length;
    let ss = 0;
    for (const v of slice) ss += (v - mean) ** 2;
    const std = Math.sqrt(ss / (slice.length - 1)) || 1;
    for (let ch = 0; ch < c; ch++) {
      const base = (k * c + ch) * s * s;
      for (let i = 0; i < slice.length; i++) out[base + i] = (slice[i]! - mean) / std;
    }
  }
  return out;
}

/**
 * The calibration slices of a quantized build: the shared real CT ({@link SHARED_CALIBRATION},
 * preprocessed as Curia's processor does) when `../shared` is present and the backbone takes
 * 512² slices; otherwise 4 synthetic phantom-like slices, which the manifest says.
 */
export async function calibrationSet(arch: Architecture): Promise<CalibrationSet> {
  const dir = sharedDir();
  const path = dir ? join(dir, SHARED_CALIBRATION) : null;
  if (path && existsSync(path) && arch.image_size === 512) {
    const t = (await readSafetensors(path)).tensors.get('pixel_values');
    if (t && t.shape.length === 4 && t.shape[1] === 1) {
      const count = t.shape[0]!;
      const one = toFloat32(t);
      const plane = 512 * 512;
      const c = arch.num_channels;
      const pixels = new Float32Array(count * c * plane);
      for (let k = 0; k < count; k++) {
        for (let ch = 0; ch < c; ch++)
          pixels.set(one.subarray(k * plane, (k + 1) * plane), (k * c + ch) * plane);
      }
      return { pixels, count, kind: 'shared_ct', source: `shared/${SHARED_CALIBRATION}` };
    }
  }
  const count = 4;
  return {
    pixels: syntheticSlices(arch, count),
    count,
    kind: 'synthetic',
    source: 'synthetic phantom-like slices (shared CT not available)',
  };
}

async function lastHiddenState(
  model: string | Uint8Array,
  arch: Architecture,
  cal: CalibrationSet,
): Promise<Float32Array> {
  const opts: InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
  };
  const session =
    typeof model === 'string'
      ? await InferenceSession.create(model, opts)
      : await InferenceSession.create(model, opts);
  try {
    const per = arch.num_channels * arch.image_size * arch.image_size;
    const t = numTokens(arch);
    const out = new Float32Array(cal.count * t * arch.hidden_size);
    for (let k = 0; k < cal.count; k++) {
      const x = new Tensor('float32', cal.pixels.subarray(k * per, (k + 1) * per), [
        1,
        arch.num_channels,
        arch.image_size,
        arch.image_size,
      ]);
      const r = await session.run({ [GRAPH_INPUT]: x }, ['last_hidden_state']);
      out.set(r.last_hidden_state!.data as Float32Array, k * t * arch.hidden_size);
    }
    return out;
  } finally {
    await session.release();
  }
}

/**
 * Runs the F32 source graph and its quantized derivative on the calibration set and measures how
 * closely they agree. FAILED_PRECONDITION, with the figures, when a threshold is not met.
 */
export async function measureFidelity(
  f32Model: string | Uint8Array,
  quantModel: string | Uint8Array,
  arch: Architecture,
  cal: CalibrationSet,
): Promise<FidelityReport> {
  const ref = await lastHiddenState(f32Model, arch, cal);
  const got = await lastHiddenState(quantModel, arch, cal);
  const cmp = compareTokens(ref, got, {
    tokens: numTokens(arch),
    hidden: arch.hidden_size,
    numRegisterTokens: arch.num_register_tokens,
  });
  const report: FidelityReport = {
    calibration: cal.kind,
    source: cal.source,
    slices: cal.count,
    cls_cosine_min: Math.min(...cmp.clsCosines),
    patch_cosine_mean: cmp.patchCosineMean,
    max_abs_diff: cmp.maxAbsDiff,
    thresholds: FIDELITY_THRESHOLDS,
    host_int8_features: int8CpuFeatures().present,
  };
  if (
    !(report.cls_cosine_min >= FIDELITY_THRESHOLDS.cls_cosine_min) ||
    !(report.patch_cosine_mean >= FIDELITY_THRESHOLDS.patch_cosine_mean)
  ) {
    throw new CuriaError(
      'FAILED_PRECONDITION',
      `int8 bundle refused: fidelity to the F32 bundle on ${cal.count} ${cal.kind === 'shared_ct' ? 'shared CT' : 'synthetic'} slices is ` +
        `CLS cosine min ${report.cls_cosine_min.toFixed(5)} (needs ≥ ${FIDELITY_THRESHOLDS.cls_cosine_min}), ` +
        `patch-token cosine mean ${report.patch_cosine_mean.toFixed(5)} (needs ≥ ${FIDELITY_THRESHOLDS.patch_cosine_mean}), ` +
        `max |diff| ${report.max_abs_diff.toExponential(2)}`,
    );
  }
  return report;
}
