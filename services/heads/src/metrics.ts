import type { ServiceMetrics } from '@curia/kit';

/** Registers the heads service's own metrics (on top of the kit's gRPC RED metrics) on a server's registry. */
export function createHeadsMetrics(m: ServiceMetrics) {
  return {
    /** `curia_heads_predict_seconds{head}`: applying a head, per Predict call. */
    predict: m.stageHistogram('heads_predict', 'Head application time per Predict call', ['head']),
    /** `curia_heads_fit_seconds{kind}`: training (CV + final fit), per Fit call. */
    fit: m.stageHistogram('heads_fit', 'Training time per Fit call (CV + final fit)', ['kind']),
    /** `curia_heads_errors_total{method,reason}`: failed calls by status code name. */
    errors: m.counter('curia_heads_errors_total', 'Failed heads calls by method and reason', [
      'method',
      'reason',
    ]),
    /** `curia_heads_predict_total{head,code}`: Predict calls by head and status code name. */
    predictions: m.counter('curia_heads_predict_total', 'Predict calls by head and status code', [
      'head',
      'code',
    ]),
  };
}

/** The heads service's own metrics. */
export type HeadsMetrics = ReturnType<typeof createHeadsMetrics>;
