import type { ServiceMetrics } from '@curia/kit';

/**
 * Registers the gateway's own metrics (on top of the kit's gRPC RED metrics); once per server.
 * Names are the chart's contract.
 */
export function createGatewayMetrics(m: ServiceMetrics) {
  return {
    /** `curia_gateway_stage_seconds{stage}`: upload | mask | preprocess | embed | heads | total, per study
     *  (`mask`: decoding `start.mask`, only when one is given). */
    stage: m.stageHistogram('gateway_stage', 'Wall time of each analysis stage per study.', ['stage']),
    cacheHits: m.counter('curia_gateway_cache_hits_total', 'Slices whose features came from the cache.'),
    cacheMisses: m.counter('curia_gateway_cache_misses_total', 'Slices that had to be embedded.'),
    cacheEvictions: m.counter(
      'curia_gateway_cache_evictions_total',
      'Cache entries evicted to stay under CURIA_GATEWAY_CACHE_MAX_BYTES.',
    ),
    cacheBytes: m.gauge('curia_gateway_cache_bytes', 'Bytes of features held by the embedding cache.'),
    cacheEntries: m.gauge('curia_gateway_cache_entries', 'Slices held by the embedding cache.'),
    studiesInFlight: m.gauge('curia_gateway_studies_in_flight', 'Studies being analysed by this replica.'),
    shed: m.counter('curia_gateway_shed_total', 'Studies refused with RESOURCE_EXHAUSTED (gateway full).'),
    /** `curia_gateway_backend_retries_total{stage}`: stage calls retried after UNAVAILABLE. */
    retries: m.counter(
      'curia_gateway_backend_retries_total',
      'Stage calls retried on another replica after UNAVAILABLE.',
      ['stage'],
    ),
  };
}

/** The gateway's own metrics. */
export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
