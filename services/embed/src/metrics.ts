import type { ServiceMetrics } from '@curia/kit';

/** Buckets of the batch-size histogram (slices). */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

/** Registers the embed service's own metrics (on top of the kit's gRPC RED metrics); once per server. */
export function createEmbedMetrics(m: ServiceMetrics) {
  return {
    queueDepth: m.gauge('curia_embed_queue_depth', 'Slices waiting for a batch, per model.', ['model']),
    queueWait: m.stageHistogram('embed_queue_wait', 'Time a slice waited for its batch.', ['model']),
    compute: m.stageHistogram('embed_compute', 'Backbone forward time per batch.', ['model']),
    batchSize: m.histogram('curia_embed_batch_size', 'Slices per inference batch.', BATCH_SIZE_BUCKETS, [
      'model',
    ]),
    slices: m.counter('curia_embed_slices_total', 'Slices run through the backbone.', ['model']),
    inflight: m.gauge(
      'curia_embed_inflight_slices',
      'Slices accepted and not yet answered (queued or computing): the saturation signal for autoscaling.',
    ),
    errors: m.counter('curia_embed_errors_total', 'Embed streams failed, by reason (status code).', [
      'reason',
    ]),
    shed: m.counter(
      'curia_embed_shed_total',
      'Slices (or streams, refused at start) shed because the inference queue was full.',
    ),
  };
}

/** The embed service's own metrics. */
export type EmbedMetrics = ReturnType<typeof createEmbedMetrics>;
