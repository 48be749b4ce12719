import { createServer, type Server } from 'node:http';

/** One span a service exported. */
export interface OtlpSpan {
  service: string;
  traceId: string;
  name: string;
}

/** A minimal OTLP/HTTP JSON trace receiver. */
export async function startCollector(): Promise<{ server: Server; url: string; spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      try {
        const doc = JSON.parse(body) as {
          resourceSpans?: {
            resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
            scopeSpans?: { spans?: { traceId: string; name: string }[] }[];
          }[];
        };
        for (const rs of doc.resourceSpans ?? []) {
          const service =
            rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? []) spans.push({ service, traceId: s.traceId, name: s.name });
        }
      } catch {
        // not JSON: ignore
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}`, spans };
}

/** The OpenTelemetry environment that makes every service of a local cluster export to `collectorUrl`. */
export function otlpEnv(collectorUrl: string): Record<string, string> {
  return {
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl,
    OTEL_BSP_SCHEDULE_DELAY: '200',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
  };
}

/** The services (without the `curia-` prefix) that exported spans of `traceId`, once `want` of them have (or 15 s passed). */
export async function servicesInTrace(
  spans: readonly OtlpSpan[],
  traceId: string,
  want: number,
): Promise<string[]> {
  const services = (): string[] => [
    ...new Set(spans.filter((s) => s.traceId === traceId).map((s) => s.service.replace(/^curia-/, ''))),
  ];
  // The services export in batches (200 ms schedule); on a loaded machine that takes a while.
  for (let waited = 0; waited < 15_000 && services().length < want; waited += 250)
    await new Promise((r) => setTimeout(r, 250));
  return services().sort();
}
