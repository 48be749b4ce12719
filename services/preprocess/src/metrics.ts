import type { ServiceMetrics } from '@curia/kit';

type Histogram = ReturnType<ServiceMetrics['stageHistogram']>;
type Counter = ReturnType<ServiceMetrics['counter']>;
type Gauge = ReturnType<ServiceMetrics['gauge']>;

/** The preprocess service's own metrics. */
export interface PreprocessMetrics {
  /** `curia_preprocess_decode_seconds`: opening (parsing, decompressing) a volume. */
  readonly decode: Histogram;
  /** `curia_preprocess_slice_seconds`: computing one slice (read, resize, clip, z-score, encode). */
  readonly slice: Histogram;
  /** `curia_preprocess_slices_total`: slices computed. */
  readonly slices: Counter;
  /** `curia_preprocess_upload_bytes_total`: streamed bytes received. */
  readonly uploadBytes: Counter;
  /** `curia_preprocess_errors_total{reason}`: failed requests by status code name. */
  readonly errors: Counter;
  /** `curia_preprocess_upload_pool_bytes`: upload buffer bytes kept for reuse between calls. */
  readonly uploadPoolBytes: Gauge;
}

/** Registers the preprocess metrics on a service's registry. */
export function createPreprocessMetrics(m: ServiceMetrics): PreprocessMetrics {
  return {
    decode: m.stageHistogram('preprocess_decode', 'Time to open and decode one input volume.'),
    slice: m.stageHistogram('preprocess_slice', 'Time to compute one preprocessed slice.'),
    slices: m.counter('curia_preprocess_slices_total', 'Preprocessed slices computed.'),
    uploadBytes: m.counter('curia_preprocess_upload_bytes_total', 'Bytes received in streamed uploads.'),
    errors: m.counter('curia_preprocess_errors_total', 'Failed Preprocess calls by reason.', ['reason']),
    uploadPoolBytes: m.gauge(
      'curia_preprocess_upload_pool_bytes',
      'Upload buffer bytes kept for reuse between calls (CURIA_PREPROCESS_UPLOAD_POOL_BYTES bounds it).',
    ),
  };
}
