import type { ServiceMetrics } from '@curia/kit';

/** Registers the segment service's own metrics (on top of the kit's gRPC RED metrics). */
export function createSegmentMetrics(m: ServiceMetrics) {
  return {
    /**
     * `curia_segment_stage_seconds{stage}`: per call, preprocess | embed_and_head | prompt | nifti |
     * evaluate | fit_embed | fit_train | total.
     */
    stage: m.stageHistogram('segment_stage', 'Wall time of each segmentation stage per call.', ['stage']),
    /** `curia_segment_cache_hits_total`: slices whose tokens came from the token cache. */
    cacheHits: m.counter('curia_segment_cache_hits_total', 'Slices whose patch tokens came from the cache.'),
    /** `curia_segment_cache_misses_total`: slices embedded by Embed. */
    cacheMisses: m.counter('curia_segment_cache_misses_total', 'Slices whose patch tokens Embed computed.'),
    cacheBytes: m.gauge('curia_segment_cache_bytes', 'Bytes of patch tokens held by the token cache.'),
    /** `curia_segment_in_flight`: Segment/Fit/SegmentFeatures calls running. */
    inFlight: m.gauge('curia_segment_in_flight', 'Segmentation calls this replica is running.'),
    /** `curia_segment_shed_total`: calls refused with RESOURCE_EXHAUSTED (replica full). */
    shed: m.counter('curia_segment_shed_total', 'Calls refused with RESOURCE_EXHAUSTED (replica full).'),
    /** `curia_segment_stage_retries_total{stage}`: stage calls retried on another replica. */
    retries: m.counter('curia_segment_stage_retries_total', 'Stage calls retried after UNAVAILABLE.', [
      'stage',
    ]),
    /** `curia_segment_fit_dice{head,class}`: cross-validated Dice of the latest fit of each head. */
    fitDice: m.gauge(
      'curia_segment_fit_dice',
      'Cross-validated Dice per class of the latest fit of a head.',
      ['head', 'class'],
    ),
    /** `curia_segment_fits_total`: Fit calls that stored a head. */
    fits: m.counter('curia_segment_fits_total', 'Fit calls that stored a new head version.'),
  };
}

/** The segment service's own metrics. */
export type SegmentMetrics = ReturnType<typeof createSegmentMetrics>;
