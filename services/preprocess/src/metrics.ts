import type { ServiceMetrics } from '@curia/kit';

/** Registers the preprocess service's own metrics on a service's registry. */
export function createPreprocessMetrics(m: ServiceMetrics) {
  return {
    /** `curia_preprocess_decode_seconds`: opening (parsing, decompressing) a volume. */
    decode: m.stageHistogram('preprocess_decode', 'Time to open and decode one input volume.'),
    /** `curia_preprocess_slice_seconds`: computing one slice (read, resize, clip, z-score, encode). */
    slice: m.stageHistogram('preprocess_slice', 'Time to compute one preprocessed slice.'),
    /** `curia_preprocess_slices_total`: slices computed. */
    slices: m.counter('curia_preprocess_slices_total', 'Preprocessed slices computed.'),
    /** `curia_preprocess_upload_bytes_total`: streamed bytes received. */
    uploadBytes: m.counter('curia_preprocess_upload_bytes_total', 'Bytes received in streamed uploads.'),
    /** `curia_preprocess_errors_total{reason}`: failed requests by status code name. */
    errors: m.counter('curia_preprocess_errors_total', 'Failed Preprocess calls by reason.', ['reason']),
    /** `curia_preprocess_upload_pool_bytes`: upload buffer bytes kept for reuse between calls. */
    uploadPoolBytes: m.gauge(
      'curia_preprocess_upload_pool_bytes',
      'Upload buffer bytes kept for reuse between calls (CURIA_PREPROCESS_UPLOAD_POOL_BYTES bounds it).',
    ),
  };
}

/** The preprocess service's own metrics. */
export type PreprocessMetrics = ReturnType<typeof createPreprocessMetrics>;
