import { hostname } from 'node:os';

import { checkHeadModel, modelsCompatible, parseRef } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { fitHead, type HeadOutput } from '@curia/heads';
import {
  errorReason,
  runService,
  serviceInfo,
  withSpan,
  type CuriaCallContext,
  type CuriaServer,
  noteAuditTarget,
  callerOf,
} from '@curia/kit';
import { heads, type common } from '@curia/proto';
import { registryQuotas, setupOrFatal } from '@curia/registry';

import { featureRequestOf, headInfoOf, predictionsOf } from './codec.js';
import { headsEnvSchema, type HeadsEnv } from './config.js';
import { isDefaultHead, missingDefaults } from './default-heads.js';
import { fitWorkingBytes, readFitStream, type FitPlan } from './fit-request.js';
import { createHeadsMetrics } from './metrics.js';
import { decodePredictFeatures } from './predict-features.js';
import { HEAD_NAME_RE, HeadStore, type HeadStoreOptions, type StoredHead } from './store.js';
import { trainingMetadataOf } from './training.js';

type FitContext = Parameters<heads.HeadsServiceImplementation<CuriaCallContext>['fit']>[1];

function checkSurvivalTimes(times: readonly number[]): void {
  for (let i = 0; i < times.length; i++) {
    const t = times[i]!;
    if (!Number.isFinite(t) || t < 0 || (i > 0 && t <= times[i - 1]!)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `survival_times[${i}] must be finite, >= 0 and strictly greater than the previous time`,
      );
    }
  }
}

/** The heads service implementation over an open store. */
export function createHeadsService(
  server: CuriaServer,
  env: HeadsEnv,
  store: HeadStore,
): heads.HeadsServiceImplementation<CuriaCallContext> {
  const metrics = createHeadsMetrics(server.metrics);
  const inFlightFits = new Map<string, Promise<StoredHead>>();
  const info = (s: StoredHead) =>
    headInfoOf(s, isDefaultHead(store, env.CURIA_HEADS_DEFAULT, s), store.isPromoted(s));
  const limits = {
    max_fit_samples: String(env.CURIA_HEADS_MAX_FIT_SAMPLES),
    max_fit_bytes: String(env.CURIA_HEADS_MAX_FIT_BYTES),
    max_slices: String(env.CURIA_HEADS_MAX_PREDICT_SLICES),
    max_attention_tokens: String(env.CURIA_HEADS_MAX_ATTENTION_TOKENS),
  };
  const counted = async <T>(method: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      metrics.errors.inc({ method, reason: errorReason(e) });
      throw e;
    }
  };

  async function fit(
    request: AsyncIterable<heads.FitRequest>,
    context: FitContext,
    caller: string,
  ): Promise<heads.FitResponse> {
    const plan = await readFitStream(
      request,
      {
        maxSamples: env.CURIA_HEADS_MAX_FIT_SAMPLES,
        maxBytes: env.CURIA_HEADS_MAX_FIT_BYTES,
        reserve: (bytes, what) => server.memory.acquire(bytes, { what, signal: context.signal }),
      },
      context.signal,
    );
    try {
      return await fitPlan(plan, context, caller);
    } finally {
      plan.release?.();
    }
  }

  async function fitPlan(plan: FitPlan, context: FitContext, caller: string): Promise<heads.FitResponse> {
    const { start } = plan;
    const key = start.idempotencyKey;
    const previous = key ? store.byIdempotencyKey(key) : undefined;
    const pending = key ? inFlightFits.get(key) : undefined;
    let stored: StoredHead;
    if (previous) stored = previous;
    else if (pending) stored = await pending;
    else {
      const run = withSpan(
        'heads.fit',
        { 'curia.head': start.head, 'curia.fit.kind': plan.kind, 'curia.fit.samples': plan.features.rows },
        async () => {
          // What the engine will hold, taken only when a Fit really runs (not for a repeated key).
          const { rows, cols } = plan.features;
          const releaseWork = await server.memory.acquire(fitWorkingBytes(plan), {
            what: `Fit ${plan.kind} of ${rows} samples × ${cols}`,
            signal: context.signal,
          });
          const stop = metrics.fit.startTimer({ kind: plan.kind });
          let head;
          try {
            head = await fitHead(plan.kind, plan.features, plan.labels, {
              ...plan.options,
              name: start.head,
              signal: context.signal,
            });
          } finally {
            releaseWork();
          }
          stop();
          if (context.signal.aborted)
            throw new CuriaError('CANCELLED', 'Fit was cancelled; nothing was stored');
          return store.add(
            head,
            {
              model: start.model,
              description: start.description,
              unit: start.unit,
              dataset: start.dataset,
              demo: start.demo,
              fitOptions: plan.resolved as unknown as Record<string, unknown>,
              feature: featureRequestOf(plan.spec),
              ...(start.requirements?.slices ? { selection: start.requirements.slices } : {}),
              ...(key ? { idempotencyKey: key } : {}),
            },
            // The unversioned name moves only when asked (issue #17): a Fit adds a version beside it.
            { promote: start.promote, caller },
          );
        },
      );
      if (key) inFlightFits.set(key, run);
      try {
        stored = await run;
      } finally {
        if (key) inFlightFits.delete(key);
      }
    }
    server.log.info(
      {
        head: stored.head.meta.name,
        version: stored.head.meta.version,
        samples: plan.features.rows,
        reused: previous !== undefined || pending !== undefined,
        promoted: store.isPromoted(stored),
        caller,
      },
      'fit done',
    );
    const training = trainingMetadataOf(stored);
    return { head: info(stored), ...(training ? { training } : {}) };
  }

  /** PromoteHead: `caller` is who asks (recorded with the alias; the auth policy admits admins only). */
  async function promoteHead(
    req: heads.PromoteHeadRequest,
    caller: string,
  ): Promise<heads.PromoteHeadResponse> {
    if (!req.name) throw new CuriaError('INVALID_ARGUMENT', 'name is required');
    if (!HEAD_NAME_RE.test(req.name)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `name '${req.name.slice(0, 80)}' must match ${HEAD_NAME_RE.source}`,
      );
    }
    if (!req.version) throw new CuriaError('INVALID_ARGUMENT', 'version is required');
    store.checkWritable();
    const { head, previous } = await store.promote(req.name, req.version, caller);
    server.log.info(
      { head: head.head.meta.name, version: head.head.meta.version, previous: previous ?? '', caller },
      'head promoted',
    );
    return { head: info(head), previousVersion: previous ?? '' };
  }

  return {
    getInfo: () =>
      Promise.resolve({
        info: serviceInfo('curia.heads.v1.HeadsService', env, {
          heads: store.resolved().map(info),
          demoWeightsLoaded: store.resolved().some((s) => s.service.demo),
          limits,
        }),
      }),
    listHeads: (req) =>
      counted('ListHeads', () => {
        let list = req.allVersions ? store.all() : store.resolved();
        if (req.model) {
          parseRef(req.model, 'model');
          list = list.filter((s) => s.service.model !== '' && modelsCompatible(s.service.model, req.model));
          if (list.length === 0)
            throw new CuriaError('NOT_FOUND', `no head was trained on model '${req.model}'`);
        }
        return Promise.resolve({ heads: list.map(info) });
      }),
    getHead: (req) =>
      counted('GetHead', () => {
        if (!req.name) throw new CuriaError('INVALID_ARGUMENT', 'name is required');
        const s = store.get(req.name, req.version);
        const training = trainingMetadataOf(s);
        return Promise.resolve({
          head: info(s),
          ...(training ? { training } : {}),
          promotedVersion: store.promotedVersion(req.name),
        });
      }),
    predict: (req, context) =>
      counted('Predict', async () => {
        const ref = parseRef(req.head, 'head');
        const s = store.get(ref.name, ref.version);
        const head = s.head;
        checkHeadModel(`${head.meta.name}@${head.meta.version}`, s.service.model, req.model);
        checkSurvivalTimes(req.survivalTimes);
        const headRef = `${head.meta.name}@${head.meta.version}`;
        noteAuditTarget(context, headRef);
        let code = 'OK';
        try {
          const features = await withSpan('heads.decode_features', { 'curia.head': headRef }, () =>
            decodePredictFeatures(head, req.slices, { maxSlices: env.CURIA_HEADS_MAX_PREDICT_SLICES }),
          );
          const out = await withSpan(
            'heads.predict',
            { 'curia.head': headRef, 'curia.head.kind': head.meta.kind, 'curia.slices': features.slices },
            async () => {
              const stop = metrics.predict.startTimer({ head: head.meta.name });
              try {
                return await head.run(features, {
                  signal: context.signal,
                  maxAttentionTokens: env.CURIA_HEADS_MAX_ATTENTION_TOKENS,
                });
              } finally {
                stop();
              }
            },
          );
          return respond(s, info(s), req, out);
        } catch (e) {
          code = errorReason(e);
          throw e;
        } finally {
          metrics.predictions.inc({ head: head.meta.name, code });
        }
      }),
    fit: (request, context) =>
      counted('Fit', () => {
        // Before reading the stream or fitting: a head that cannot be stored is not worth computing.
        store.checkWritable();
        return fit(request, context, callerOf(context));
      }),
    promoteHead: (req, context) => counted('PromoteHead', () => promoteHead(req, callerOf(context))),
  };
}

/** Predict response from head outputs. */
function respond(
  s: StoredHead,
  info: common.HeadInfo,
  req: heads.PredictRequest,
  out: HeadOutput,
): heads.PredictResponse {
  const head = s.head;
  const { study, rows } = predictionsOf({ head, survivalTimes: req.survivalTimes }, out);
  const perSlice = head.meta.requirements.slices === 'each';
  return {
    head: info,
    prediction: study,
    slices: perSlice ? rows.map((p, i) => ({ sliceId: req.slices[i]!.sliceId, prediction: p })) : [],
  };
}

/** Where `env` says the heads live: the shared PostgreSQL registry when a DSN is set, else CURIA_HEADS_DIR. */
export function headStoreOptions(env: HeadsEnv, log: CuriaServer['log']): HeadStoreOptions {
  return {
    dir: env.CURIA_HEADS_DIR,
    dsn: env.CURIA_HEADS_REGISTRY_DSN,
    quotas: registryQuotas({
      maxVersionsPerName: env.CURIA_HEADS_REGISTRY_MAX_VERSIONS_PER_NAME,
      maxVersionsTotal: env.CURIA_HEADS_REGISTRY_MAX_VERSIONS,
      maxBytesTotal: env.CURIA_HEADS_REGISTRY_MAX_BYTES,
    }),
    log: (level, message) => log[level](message),
    // Who stores what this replica fits or imports (the registry records it with each version).
    creator: `heads/${env.CURIA_REPLICA || hostname()}`,
    onSkip: (where, err) =>
      log.warn({ where, err: err instanceof Error ? err.message : String(err) }, 'skipping unreadable head'),
  };
}

/**
 * Opens the head store (the shared registry when CURIA_HEADS_REGISTRY_DSN is set, else the
 * directory), runs the configured imports and registers HeadsService on `server`. Throws when the
 * store cannot be opened (registry database unreachable: UNAVAILABLE; migration refused:
 * FAILED_PRECONDITION), with a message that never holds the DSN's password.
 */
export async function setupHeads(
  server: CuriaServer,
  env: HeadsEnv,
): Promise<{ store: HeadStore; close: () => Promise<void> }> {
  const store = await HeadStore.openOn(headStoreOptions(env, server.log));
  try {
    for (const spec of env.CURIA_HEADS_IMPORT) {
      const s = await store.importCuria(spec);
      server.log.info({ head: s.head.meta.name, version: s.head.meta.version }, 'imported Curia head');
    }
  } catch (e) {
    await store.close();
    throw e;
  }
  server.log.info(
    { heads: store.all().length, store: store.root === undefined ? 'postgresql' : 'dir', where: store.where },
    'head store loaded',
  );
  const missing = missingDefaults(store, env.CURIA_HEADS_DEFAULT);
  // Info, not warn: not an error (a Fit may create them; `curia up` fits its demo head after start).
  if (missing.length > 0) {
    server.log.info({ missing }, 'CURIA_HEADS_DEFAULT names heads the store does not hold yet');
  }
  server.add(heads.HeadsServiceDefinition, createHeadsService(server, env, store));
  return { store, close: () => store.close() };
}

/** Process entry: serve HeadsService until SIGTERM. */
export async function main(): Promise<void> {
  await runService({
    name: 'heads',
    schema: headsEnvSchema,
    // A store that cannot be opened: NOT_SERVING, one error line, exit 1 (README, "The shared registry").
    setup: (server, env) => setupOrFatal('heads', server, () => setupHeads(server, env)),
  });
}
