import type { ServiceMetrics } from '@curia/kit';

/** Registers the register service's own metrics (on top of the kit's gRPC RED metrics). */
export function createRegisterMetrics(m: ServiceMetrics) {
  return {
    /**
     * `curia_register_stage_seconds{stage}`: per call, read | curia_features | features | affine |
     * rigid | deformable | quality | outputs | total.
     */
    stage: m.stageHistogram(
      'register_stage',
      'Wall time of each registration stage per call.',
      ['stage'],
      [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
    ),
    /** `curia_register_in_flight`: Register calls running. */
    inFlight: m.gauge('curia_register_in_flight', 'Register calls this replica is running.'),
    /** `curia_register_shed_total`: calls refused with RESOURCE_EXHAUSTED (replica full). */
    shed: m.counter('curia_register_shed_total', 'Calls refused with RESOURCE_EXHAUSTED (replica full).'),
    /** `curia_register_stage_retries_total{stage}`: stage calls retried on another replica. */
    retries: m.counter('curia_register_stage_retries_total', 'Stage calls retried after UNAVAILABLE.', [
      'stage',
    ]),
    /** `curia_register_slices_embedded_total`: slices sent through Embed for Curia features. */
    slicesEmbedded: m.counter(
      'curia_register_slices_embedded_total',
      'Slices embedded for Curia registration features (PCA sample and full pass).',
    ),
    /** `curia_register_folding_fraction`: fraction of folded working-grid voxels per registration. */
    foldingFraction: m.histogram(
      'curia_register_folding_fraction',
      'Fraction of working-grid voxels where the Jacobian determinant of the result is <= 0.',
      [0, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.2],
    ),
  };
}

/** The register service's own metrics. */
export type RegisterMetrics = ReturnType<typeof createRegisterMetrics>;
