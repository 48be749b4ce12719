import { parseRef, refMatches } from '@curia/client';
import { CuriaError } from '@curia/errors';
import type { Logger } from '@curia/kit';
import {
  EmbedEngine,
  ensureDefaultBundle,
  featureSpaceOf,
  WorkerEmbedEngine,
  type EmbedRunner,
  type EngineOptions,
} from '@curia/model';
import { common } from '@curia/proto';

import type { EmbedEnv } from './config.js';

/** One loaded backbone. */
export interface ModelEntry {
  /** `name@version`: batcher key and metrics label. */
  readonly key: string;
  readonly engine: EmbedRunner;
  /** What GetInfo / ListModels / the Embed summary report. */
  readonly info: common.ModelInfo;
  /** Patch grid side G (image_size / patch_size). */
  readonly grid: number;
}

function modelInfo(engine: EmbedRunner, isDefault: boolean): common.ModelInfo {
  const m = engine.bundle.manifest;
  const a = m.architecture;
  const q = m.quantization;
  return {
    name: m.name,
    version: m.version,
    sha256: m.sha256,
    demoWeights: m.demo_weights,
    isDefault,
    architecture: {
      family: 'dinov2',
      hiddenSize: a.hidden_size,
      numLayers: a.num_layers,
      numAttentionHeads: a.num_heads,
      patchSize: a.patch_size,
      imageSize: a.image_size,
      numChannels: a.num_channels,
      numRegisterTokens: a.num_register_tokens,
      mlp: a.ffn === 'swiglu' ? common.MlpKind.SWIGLU : common.MlpKind.GELU,
    },
    featureSpace: featureSpaceOf(m),
    ...(q
      ? {
          quantization: {
            scheme: q.scheme,
            sourceSha256: q.source_sha256,
            calibration: q.fidelity.calibration,
            calibrationSlices: q.fidelity.slices,
            clsCosineMin: q.fidelity.cls_cosine_min,
            patchCosineMean: q.fidelity.patch_cosine_mean,
            maxAbsDiff: q.fidelity.max_abs_diff,
          },
        }
      : {}),
  };
}

/** The backbones this process serves, the first being the default. */
export class ModelRegistry {
  private constructor(readonly entries: readonly ModelEntry[]) {}

  /**
   * Opens every bundle of `CURIA_EMBED_MODELS` (or the cached demo bundle when it is empty).
   * FAILED_PRECONDITION when two bundles share `name@version`.
   */
  static async load(env: EmbedEnv, log: Logger, signal?: AbortSignal): Promise<ModelRegistry> {
    const dirs = env.CURIA_EMBED_MODELS;
    if (dirs.length === 0) dirs.push(await ensureDefaultBundle(undefined, signal));
    const opts: EngineOptions = {
      executionProviders: env.CURIA_EMBED_EXECUTION_PROVIDERS,
      maxBatch: env.CURIA_EMBED_MAX_BATCH,
      ...(env.CURIA_EMBED_INTRA_OP_THREADS ? { intraOpThreads: env.CURIA_EMBED_INTRA_OP_THREADS } : {}),
      ...(env.CURIA_EMBED_INTER_OP_THREADS ? { interOpThreads: env.CURIA_EMBED_INTER_OP_THREADS } : {}),
      ...(signal ? { signal } : {}),
    };
    const entries: ModelEntry[] = [];
    try {
      for (const dir of dirs) {
        const engine = env.CURIA_EMBED_ENGINE_THREAD
          ? await WorkerEmbedEngine.open(dir, opts)
          : await EmbedEngine.open(dir, opts);
        const info = modelInfo(engine, entries.length === 0);
        const key = `${info.name}@${info.version}`;
        if (entries.some((e) => e.key === key)) {
          await engine.close();
          throw new CuriaError('FAILED_PRECONDITION', `CURIA_EMBED_MODELS lists model ${key} twice`);
        }
        const ei = engine.info();
        if (ei.fallbackReason) {
          log.warn(
            { model: key, provider: ei.executionProvider, reason: ei.fallbackReason },
            'execution provider fallback',
          );
        }
        const m = engine.bundle.manifest;
        // GetInfo's ModelInfo has no quantization/feature-space fields (a proto change): the log says it.
        log.info(
          {
            model: key,
            provider: ei.executionProvider,
            demo: info.demoWeights,
            feature_space: featureSpaceOf(m),
            ...(m.quantization
              ? {
                  quantization: m.quantization.scheme,
                  source_sha256: m.quantization.source_sha256,
                  fidelity_cls_cosine_min: m.quantization.fidelity.cls_cosine_min,
                  fidelity_patch_cosine_mean: m.quantization.fidelity.patch_cosine_mean,
                  fidelity_calibration: m.quantization.fidelity.calibration,
                }
              : {}),
          },
          'model loaded',
        );
        const a = engine.bundle.manifest.architecture;
        entries.push({ key, engine, info, grid: a.image_size / a.patch_size });
      }
    } catch (e) {
      await Promise.all(entries.map((x) => x.engine.close()));
      throw e;
    }
    return new ModelRegistry(entries);
  }

  /** The default model (first loaded). */
  get default(): ModelEntry {
    return this.entries[0]!;
  }

  /** Resolves "", "name" or "name@version"; NOT_FOUND naming the available models otherwise. */
  resolve(spec: string): ModelEntry {
    const s = spec.trim();
    if (s === '') return this.default;
    const ref = parseRef(s, 'start.model');
    const hit = this.entries.find((e) => refMatches(ref, e.info.name, e.info.version));
    if (!hit) {
      throw new CuriaError(
        'NOT_FOUND',
        `start.model: unknown model '${s}'; available: ${this.entries.map((e) => e.key).join(', ')}`,
      );
    }
    return hit;
  }

  /** Provider in use (of the default model) and why it fell back, if it did. */
  executionProvider(): { provider: string; fallbackReason: string } {
    const reasons = new Set<string>();
    for (const e of this.entries) {
      const r = e.engine.info().fallbackReason;
      if (r) reasons.add(r);
    }
    return {
      provider: this.default.engine.info().executionProvider,
      fallbackReason: [...reasons].join('; '),
    };
  }

  /** Releases every ORT session. */
  async close(): Promise<void> {
    await Promise.all(this.entries.map((e) => e.engine.close()));
  }
}
