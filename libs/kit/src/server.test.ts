import { SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { context as otelContext, propagation } from '@opentelemetry/api';
import { delay } from 'abort-controller-x';
import { ClientError, Status, createClient, type Channel } from 'nice-grpc';
import {
  HealthDefinition,
  HealthCheckResponse_ServingStatus,
} from 'nice-grpc-server-health/lib/proto/grpc/health/v1/health.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

import { createCuriaChannel, createCuriaClient } from '@curia/client';

import { loadConfig, serviceEnvSchema } from './config.js';
import { CuriaServer } from './server.js';
import { EchoDefinition } from './testing/echo-service.js';
import { startEchoServer } from './testing/echo-server.js';

const exporter = new InMemorySpanExporter();

beforeAll(() => {
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  otelContext.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});

const servers: CuriaServer[] = [];
const channels: Channel[] = [];
afterEach(async () => {
  for (const c of channels.splice(0)) c.close();
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

async function startEcho(env: Record<string, string> = {}) {
  const started = await startEchoServer(env);
  servers.push(started.server);
  const channel = createCuriaChannel(`127.0.0.1:${started.ports.grpcPort}`);
  channels.push(channel);
  return { ...started, channel };
}

describe('CuriaServer', () => {
  it('serves health Check and Watch, and Watch sees NOT_SERVING then ends during shutdown', async () => {
    const { server, channel } = await startEcho({ CURIA_SHUTDOWN_GRACE_MS: '2000' });
    const health = createClient(HealthDefinition, channel);
    expect((await health.check({ service: '' })).status).toBe(HealthCheckResponse_ServingStatus.SERVING);
    expect((await health.check({ service: 'curia.test.v1.EchoService' })).status).toBe(
      HealthCheckResponse_ServingStatus.SERVING,
    );
    await expect(health.check({ service: 'nope' })).rejects.toMatchObject({ code: Status.NOT_FOUND });

    const seen: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      try {
        for await (const r of health.watch({ service: 'curia.test.v1.EchoService' })) {
          seen.push(r.status);
          if (seen.length === 1) void server.shutdown();
        }
        return 'ended';
      } catch (e) {
        return e instanceof ClientError ? Status[e.code] : String(e);
      }
    })();
    const end = await watching;
    expect(seen).toEqual([
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    ]);
    expect(end).toBe('UNAVAILABLE');
  });

  it('lets an in-flight call finish during drain and refuses new work', async () => {
    const { server, channel } = await startEcho({ CURIA_SHUTDOWN_GRACE_MS: '5000' });
    const client = createCuriaClient(EchoDefinition, channel, { retryMaxAttempts: 1 });
    const inFlight = client.unary({ text: 'slow', delayMs: 400 });
    await delay(new AbortController().signal, 100);
    const shutdown = server.shutdown();
    await expect(inFlight).resolves.toMatchObject({ text: 'slow' });
    await shutdown;
    await expect(client.unary({ text: 'late' }, { deadline: 1000 })).rejects.toBeInstanceOf(ClientError);
  });

  it('ends a stream still running after the grace period with UNAVAILABLE', async () => {
    const { server, channel } = await startEcho({ CURIA_SHUTDOWN_GRACE_MS: '300' });
    const client = createCuriaClient(EchoDefinition, channel);
    const got: string[] = [];
    const run = (async () => {
      for await (const m of client.serverStream({ count: 1000, delayMs: 50 })) {
        got.push(m.text ?? '');
        if (got.length === 2) void server.shutdown();
      }
    })();
    const t0 = Date.now();
    await expect(run).rejects.toMatchObject({ code: Status.UNAVAILABLE });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(got.length).toBeGreaterThan(2);
  });

  it('exports go-grpc-prometheus RED metrics with method and code labels', async () => {
    const { ports, channel } = await startEcho();
    const client = createCuriaClient(EchoDefinition, channel);
    await client.unary({ text: 'a' });
    await expect(client.mutate({ fail: 'INVALID_ARGUMENT' })).rejects.toMatchObject({
      code: Status.INVALID_ARGUMENT,
    });
    const text = await (await fetch(`http://127.0.0.1:${ports.metricsPort}/metrics`)).text();
    expect(text).toMatch(
      /grpc_server_handled_total\{[^}]*grpc_service="curia.test.v1.EchoService",grpc_method="Unary"[^}]*grpc_code="OK"[^}]*\} 1/,
    );
    expect(text).toMatch(
      /grpc_server_handled_total\{[^}]*grpc_method="Mutate"[^}]*grpc_code="INVALID_ARGUMENT"[^}]*\} 1/,
    );
    expect(text).toMatch(/grpc_server_handling_seconds_bucket\{[^}]*grpc_method="Unary"/);
    expect(text).toMatch(/grpc_server_started_total\{[^}]*grpc_method="Mutate"[^}]*\} 1/);
    expect((await fetch(`http://127.0.0.1:${ports.metricsPort}/readyz`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${ports.metricsPort}/livez`)).status).toBe(200);
  });

  it('reports /readyz 503 until the service is marked serving', async () => {
    const server = new CuriaServer({
      name: 'cold',
      env: loadConfig(serviceEnvSchema, {
        CURIA_GRPC_HOST: '127.0.0.1',
        CURIA_LOG_LEVEL: 'silent',
        CURIA_PROCESS_METRICS: 'false',
      }),
    });
    servers.push(server);
    const { metricsPort } = await server.start();
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(503);
    server.setServing(true);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status).toBe(200);
  });

  it('continues a client trace in the server', async () => {
    const { channel } = await startEcho();
    const client = createCuriaClient(EchoDefinition, channel);
    const tracer = trace.getTracer('test');
    exporter.reset();
    const { traceId, reply } = await tracer.startActiveSpan('caller', async (span) => {
      const reply = await client.unary({ text: 't' });
      span.end();
      return { traceId: span.spanContext().traceId, reply };
    });
    expect(reply.traceId).toBe(traceId);
    const spans = exporter.getFinishedSpans();
    const serverSpan = spans.find(
      (s) => s.name === 'curia.test.v1.EchoService/Unary' && s.kind === SpanKind.SERVER,
    );
    expect(serverSpan?.spanContext().traceId).toBe(traceId);
  });

  it('maps errors to precise statuses, never UNKNOWN, and hides internal details', async () => {
    const { channel } = await startEcho();
    const client = createCuriaClient(EchoDefinition, channel, { retryMaxAttempts: 1 });
    await expect(client.mutate({ fail: 'NOT_FOUND' })).rejects.toMatchObject({ code: Status.NOT_FOUND });
    const err = await client.mutate({ fail: 'BOOM' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(Status.INTERNAL);
    expect((err as ClientError).details).not.toContain('secret');
  });

  it('rejects oversize messages with RESOURCE_EXHAUSTED', async () => {
    const { channel } = await startEcho({
      CURIA_MAX_RECEIVE_MESSAGE_BYTES: '1024',
      CURIA_MAX_SEND_MESSAGE_BYTES: '2048',
    });
    const client = createCuriaClient(EchoDefinition, channel, { retryMaxAttempts: 1 });
    await expect(client.mutate({ text: 'x'.repeat(5000) })).rejects.toMatchObject({
      code: Status.RESOURCE_EXHAUSTED,
    });
    await expect(client.mutate({ padding: 5000 })).rejects.toMatchObject({ code: Status.RESOURCE_EXHAUSTED });
    await expect(client.mutate({ text: 'small' })).resolves.toMatchObject({ text: 'small' });
  });

  it('answers an unknown method with UNIMPLEMENTED', async () => {
    const { channel } = await startEcho();
    const Unknown = {
      ...EchoDefinition,
      methods: { nope: { ...EchoDefinition.methods.unary, name: 'DoesNotExist' } },
    } as const;
    const client = createClient(Unknown, channel);
    await expect(client.nope({})).rejects.toMatchObject({ code: Status.UNIMPLEMENTED });
  });

  it('retries UNAVAILABLE for idempotent methods only', async () => {
    const { channel, attempts } = await startEcho();
    const client = createCuriaClient(EchoDefinition, channel, { retryBaseDelayMs: 10 });
    const reply = await client.unary({ key: 'idem', fail: 'UNAVAILABLE' });
    expect(reply.attempt).toBe(3);
    await expect(client.mutate({ key: 'mut', fail: 'UNAVAILABLE' })).rejects.toMatchObject({
      code: Status.UNAVAILABLE,
    });
    expect(attempts.get('mut')).toBe(1);
  });

  it('exposes the caller deadline to handlers and cancels work when it passes', async () => {
    const { channel, server } = await startEcho();
    const client = createCuriaClient(EchoDefinition, channel);
    const before = Date.now();
    const reply = await client.unary({ text: 'd' }, { deadline: 5000 });
    expect(reply.deadlineMs).toBeGreaterThan(before + 4000);
    expect(reply.deadlineMs).toBeLessThan(before + 6000);
    await expect(client.unary({ delayMs: 5000 }, { deadline: 200 })).rejects.toMatchObject({
      code: Status.DEADLINE_EXCEEDED,
    });
    await delay(new AbortController().signal, 100);
    expect(server.drain.inFlight).toBe(0);
  });
});
