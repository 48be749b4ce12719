/**
 * `@curia/loadtest`: a grpc-js load generator (open and closed loop), HDR latency histograms,
 * per-replica distribution and memory from the services' metrics, reports (JSON, Markdown, PNG)
 * and the scenarios of the load, scaling and fault experiments.
 *
 * @packageDocumentation
 */
export * from './chart.js';
export * from './generator.js';
export * from './histogram.js';
export * from './prometheus.js';
export * from './raw-client.js';
export * from './replicas.js';
export * from './report.js';
export * from './scenarios.js';
export * from './timeline.js';
