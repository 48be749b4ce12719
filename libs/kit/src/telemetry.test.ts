import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { CuriaError } from '@curia/errors';

import { curiaTracer, withSpan } from './telemetry.js';

const exporter = new InMemorySpanExporter();

beforeAll(() => {
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
});
beforeEach(() => exporter.reset());

describe('withSpan', () => {
  it('ends a span with the attributes, parent of the spans started inside it', async () => {
    const out = await withSpan('stage', { 'curia.head': 'h@1', 'curia.slices': 3 }, async () => {
      curiaTracer().startSpan('child').end();
      return Promise.resolve(42);
    });
    expect(out).toBe(42);
    const [child, stage] = exporter.getFinishedSpans();
    expect(stage).toMatchObject({ name: 'stage', attributes: { 'curia.head': 'h@1', 'curia.slices': 3 } });
    expect(stage?.status.code).toBe(SpanStatusCode.UNSET);
    expect(child?.parentSpanContext?.spanId).toBe(stage?.spanContext().spanId);
  });

  it('marks a failed span ERROR, records the exception and rethrows it', async () => {
    const err = new CuriaError('NOT_FOUND', "no head named 'x'");
    await expect(withSpan('stage', {}, () => Promise.reject(err))).rejects.toBe(err);
    await expect(
      withSpan('sync', {}, () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const [stage, sync] = exporter.getFinishedSpans();
    expect(stage?.status).toEqual({ code: SpanStatusCode.ERROR, message: "no head named 'x'" });
    expect(stage?.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([
      ['exception', "no head named 'x'"],
    ]);
    expect(sync?.status.code).toBe(SpanStatusCode.ERROR);
  });
});
