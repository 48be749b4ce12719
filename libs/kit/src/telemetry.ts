import { context, propagation, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';

let sdk: NodeSDK | null = null;
let started = false;

function exporterConfigured(env: NodeJS.ProcessEnv): boolean {
  const exporter = env.OTEL_TRACES_EXPORTER;
  if (exporter) return exporter !== 'none';
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts OpenTelemetry for a service process. Call it first in a service's entry point, before
 * importing application modules. Exporters come from the standard `OTEL_*` variables
 * (`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, …). W3C trace
 * context and baggage propagation are on even when no exporter is configured, so a trace
 * started by a caller continues through every hop.
 */
export function startTelemetry(serviceName: string, env: NodeJS.ProcessEnv = process.env): void {
  if (started) return;
  started = true;
  if (exporterConfigured(env)) {
    env.OTEL_SERVICE_NAME ??= serviceName;
    sdk = new NodeSDK({
      textMapPropagator: new CompositePropagator({
        propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
      }),
      contextManager: new AsyncLocalStorageContextManager(),
    });
    sdk.start();
    return;
  }
  // No exporter: spans are not recorded, but the context still flows in and out of gRPC metadata.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
}

/** Flushes and stops the SDK (pending spans are exported). Safe to call when none started. */
export async function shutdownTelemetry(): Promise<void> {
  const s = sdk;
  sdk = null;
  if (s) await s.shutdown();
}

/** The tracer Curia code uses for its own stage spans. */
export function curiaTracer(): Tracer {
  return trace.getTracer('curia');
}

/**
 * Runs `fn` inside an active span named `name` (so downstream gRPC calls become its children).
 * When `fn` throws, the span records the exception and gets status ERROR (with the error's
 * message), so trace backends show the failed step. Attributes must never hold pixel data or PHI.
 */
export function withSpan<T>(
  name: string,
  attrs: Record<string, string | number>,
  fn: () => T | Promise<T>,
): Promise<T> {
  return curiaTracer().startActiveSpan(name, { attributes: attrs }, async (span) => {
    try {
      return await fn();
    } catch (e) {
      span.recordException(e instanceof Error ? e : String(e));
      span.setStatus({ code: SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
      throw e;
    } finally {
      span.end();
    }
  });
}
