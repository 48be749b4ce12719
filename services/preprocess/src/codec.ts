import { common, lendEnvelope, type preprocess } from '@curia/proto';
import { fromFloat32 } from '@curia/tensors';
import type { Geometry, PooledPreprocessedSlice, PreprocessedSlice, PreprocessSpec } from '@curia/volume';

import type { OutputDType } from './options.js';

const frameOf = (f: 'RAS' | 'LPS'): common.CoordinateFrame =>
  f === 'RAS' ? common.CoordinateFrame.RAS : common.CoordinateFrame.LPS;

/**
 * Maps the engine's Geometry to `CanonicalGeometry` as geometry.proto documents it: canonical
 * axis 0 = columns (L), 1 = rows (P), 2 = slices (S), so the engine's [slice, row, col] arrays are
 * reversed.
 */
export function canonicalGeometryToProto(g: Geometry): common.CanonicalGeometry {
  const { col, row, slice } = g.axes;
  return {
    input: {
      dims: [...g.inputDims],
      spacingMm: [...g.inputSpacing],
      affine: { m: [...g.inputAffine], frame: frameOf(g.inputFrame) },
      axcodes: g.inputAxcodes,
    },
    canonical: {
      dims: [g.canonicalDims[2], g.canonicalDims[1], g.canonicalDims[0]],
      spacingMm: [g.canonicalSpacing[2], g.canonicalSpacing[1], g.canonicalSpacing[0]],
      affine: { m: [...g.canonicalAffine], frame: common.CoordinateFrame.LPS },
      axcodes: 'LPS',
    },
    canonicalToInputAxes: [col.inputAxis, row.inputAxis, slice.inputAxis],
    canonicalAxisFlipped: [col.flip, row.flip, slice.flip],
  };
}

/** The applied spec as the proto describes it. */
export function specToProto(
  bundle: string,
  spec: PreprocessSpec,
  dtype: OutputDType,
): preprocess.PreprocessSpec {
  return {
    modelBundle: bundle,
    height: spec.targetSize[0],
    width: spec.targetSize[1],
    resize: 'bicubic-antialias-a-0.5',
    clipBelowAir: spec.clipBelowAir,
    clipMin: spec.clipMin,
    normalization: spec.normalize === 'zscore' ? 'per-slice-zscore' : 'none',
    outputDtype: dtype === 'F16' ? common.DType.F16 : common.DType.F32,
  };
}

/** What a `slice` message says about a slice besides its pixels. */
type SliceFacts = Pick<PreprocessedSlice, 'canonicalIndex' | 'inputSliceIndex' | 'stats'>;

/** A `slice` message: mapping, (1, H, W) tensor of pixel bytes already in `dtype`, stats. */
function sliceMessage(
  g: Geometry,
  s: SliceFacts,
  dtype: OutputDType,
  data: Uint8Array,
  height: number,
  width: number,
): preprocess.PreprocessedSlice {
  return {
    mapping: {
      canonicalIndex: s.canonicalIndex,
      inputSliceIndex: s.inputSliceIndex,
      inputAxis: g.axes.slice.inputAxis,
    },
    pixels: { dtype: dtype === 'F16' ? common.DType.F16 : common.DType.F32, shape: [1, height, width], data },
    rawStats: s.stats,
  };
}

/** One `slice` response from an in-thread slice, converted to the requested dtype. */
export function sliceToProto(
  g: Geometry,
  s: PreprocessedSlice,
  height: number,
  width: number,
  dtype: OutputDType,
): preprocess.PreprocessedSlice {
  return sliceMessage(g, s, dtype, fromFloat32(s.pixels, [1, height, width], dtype).data, height, width);
}

/**
 * One `slice` response from a pool-computed slice (already in the output dtype, with
 * `SLICE_ENVELOPE_ROOM` around it): its bytes are lent to the encoder, which frames them in place,
 * and its buffer goes back to the call's next slices once encoded.
 */
export function pooledSliceToProto(
  g: Geometry,
  s: PooledPreprocessedSlice,
  height: number,
  width: number,
): preprocess.PreprocessedSlice {
  lendEnvelope(s.data, s.release);
  return sliceMessage(g, s, s.dtype, s.data, height, width);
}
