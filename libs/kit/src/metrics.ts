import type { ServerMiddleware } from 'nice-grpc-common';
import { labelNames, labelNamesWithCode, prometheusServerMiddleware } from 'nice-grpc-prometheus';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Latency buckets (seconds) shared by RPC and stage histograms: fine enough around 5 ms – 10 s
 * for SLO burn-rate alerts, with a tail to 2 min for whole-study analyses.
 */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
];

/**
 * The metrics of one service process: its own registry (so several servers can live in one
 * test process), the go-grpc-prometheus RED metrics, and helpers for stage histograms.
 */
export class ServiceMetrics {
  /** The registry served on `/metrics`. */
  readonly registry = new Registry();
  /** nice-grpc middleware that records `grpc_server_*` metrics into this registry. */
  readonly grpcMiddleware: ServerMiddleware;
  /** Calls currently being handled, by method. */
  readonly inFlight: Gauge<'grpc_service' | 'grpc_method'>;
  private readonly stages = new Map<string, Histogram<string>>();

  constructor(
    service: string,
    options: { processMetrics?: boolean; defaultLabels?: Record<string, string> } = {},
  ) {
    this.registry.setDefaultLabels({ curia_service: service, ...options.defaultLabels });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const registers = [this.registry];
    this.grpcMiddleware = prometheusServerMiddleware({
      serverStartedMetric: new Counter({
        name: 'grpc_server_started_total',
        help: 'Total number of RPCs started on the server.',
        labelNames,
        registers,
      }),
      serverHandledMetric: new Counter({
        name: 'grpc_server_handled_total',
        help: 'Total number of RPCs completed on the server, regardless of success or failure.',
        labelNames: labelNamesWithCode,
        registers,
      }),
      serverStreamMsgReceivedMetric: new Counter({
        name: 'grpc_server_msg_received_total',
        help: 'Total number of RPC stream messages received by the server.',
        labelNames,
        registers,
      }),
      serverStreamMsgSentMetric: new Counter({
        name: 'grpc_server_msg_sent_total',
        help: 'Total number of gRPC stream messages sent by the server.',
        labelNames,
        registers,
      }),
      serverHandlingSecondsMetric: new Histogram({
        name: 'grpc_server_handling_seconds',
        help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
        labelNames: labelNamesWithCode,
        buckets: LATENCY_BUCKETS_SECONDS,
        registers,
      }),
    });
    this.inFlight = new Gauge({
      name: 'curia_grpc_in_flight_calls',
      help: 'RPCs currently being handled by this process.',
      labelNames: ['grpc_service', 'grpc_method'],
      registers,
    });
  }

  /**
   * A histogram of the duration of one processing stage, named `curia_<name>_seconds`
   * (e.g. `stageHistogram('embed_compute')` → `curia_embed_compute_seconds`). Repeated calls with
   * the same name return the same histogram.
   */
  stageHistogram<L extends string = string>(
    name: string,
    help: string,
    labelNames: readonly L[] = [],
    buckets: number[] = LATENCY_BUCKETS_SECONDS,
  ): Histogram<L> {
    const full = `curia_${name}_seconds`;
    let h = this.stages.get(full);
    if (!h) {
      h = new Histogram({
        name: full,
        help,
        labelNames: [...labelNames],
        buckets,
        registers: [this.registry],
      });
      this.stages.set(full, h);
    }
    return h;
  }

  /** A counter registered on this service's registry. */
  counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return new Counter({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  /** A gauge registered on this service's registry. */
  gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return new Gauge({ name, help, labelNames: [...labelNames], registers: [this.registry] });
  }

  /** A histogram with custom buckets registered on this service's registry. */
  histogram<L extends string = string>(
    name: string,
    help: string,
    buckets: number[],
    labelNames: readonly L[] = [],
  ): Histogram<L> {
    return new Histogram({ name, help, buckets, labelNames: [...labelNames], registers: [this.registry] });
  }
}
