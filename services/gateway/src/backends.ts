import {
  createCuriaChannel,
  createCuriaClient,
  type Channel,
  type Client,
  type CuriaCallOptions,
} from '@curia/client';
import { CuriaError } from '@curia/errors';
import {
  EmbedServiceBulkClientDefinition,
  heads,
  PreprocessServiceBulkDefinition,
  type common,
} from '@curia/proto';

import type { GatewayEnv } from './config.js';
import { stageError } from './stage-errors.js';

/** Clients of the stage services, each over a round-robin channel to all its replicas. */
export class Backends {
  readonly preprocess: Client<typeof PreprocessServiceBulkDefinition, CuriaCallOptions>;
  readonly embed: Client<typeof EmbedServiceBulkClientDefinition, CuriaCallOptions>;
  readonly heads: Client<typeof heads.HeadsServiceDefinition, CuriaCallOptions>;
  private readonly channels: Channel[];
  private models: { at: number; list: Promise<common.ModelInfo[]> } | null = null;
  private preprocessBundles: { at: number; list: Promise<Set<string>> } | null = null;

  constructor(
    env: GatewayEnv,
    onRetry: (stage: 'preprocess' | 'embed' | 'heads') => void,
    private readonly ttlMs = env.CURIA_GATEWAY_CATALOG_TTL_MS,
  ) {
    const attempts = env.CURIA_GATEWAY_STAGE_ATTEMPTS;
    const make = (target: string): Channel => createCuriaChannel(target, { connectTimeoutMs: 5_000 });
    this.channels = [
      make(env.CURIA_PREPROCESS_TARGET),
      make(env.CURIA_EMBED_TARGET),
      make(env.CURIA_HEADS_TARGET),
    ];
    const [p, e, h] = this.channels as [Channel, Channel, Channel];
    this.preprocess = createCuriaClient(PreprocessServiceBulkDefinition, p, {
      retryMaxAttempts: attempts,
      onRetry: () => onRetry('preprocess'),
    });
    this.embed = createCuriaClient(EmbedServiceBulkClientDefinition, e, {
      retryMaxAttempts: attempts,
      onRetry: () => onRetry('embed'),
    });
    this.heads = createCuriaClient(heads.HeadsServiceDefinition, h, {
      retryMaxAttempts: attempts,
      onRetry: () => onRetry('heads'),
    });
  }

  /** The backbones Embed serves (default first), re-asked at most every `ttlMs`. */
  async listModels(signal?: AbortSignal): Promise<common.ModelInfo[]> {
    const now = Date.now();
    if (!this.models || now - this.models.at > this.ttlMs) {
      const list = this.embed
        .listModels({}, { deadline: 10_000, ...(signal ? { signal } : {}) })
        .then((r) => r.models);
      this.models = { at: now, list };
      list.catch(() => (this.models = null));
    }
    try {
      return await this.models.list;
    } catch (err) {
      throw stageError('embed', err, signal ? { signal } : {});
    }
  }

  /** Resolves `model` ("", "name" or "name@version") against what Embed serves; NOT_FOUND lists them. */
  async resolveModel(model: string, signal?: AbortSignal): Promise<common.ModelInfo> {
    const models = await this.listModels(signal);
    const at = model.lastIndexOf('@');
    const name = at < 0 ? model : model.slice(0, at);
    const version = at < 0 ? '' : model.slice(at + 1);
    const found =
      model === ''
        ? (models.find((m) => m.isDefault) ?? models[0])
        : models.find((m) => m.name === name && (version === '' || m.version === version));
    if (!found) {
      const known = models.map((m) => `${m.name}@${m.version}`).join(', ') || 'none';
      throw new CuriaError('NOT_FOUND', `model '${model || '(default)'}' is not served (known: ${known})`);
    }
    return found;
  }

  /** True when PreprocessService knows the bundle `name@version` (so it can apply that bundle's spec). */
  async preprocessKnows(bundle: string, signal?: AbortSignal): Promise<boolean> {
    const now = Date.now();
    if (!this.preprocessBundles || now - this.preprocessBundles.at > this.ttlMs) {
      const list = this.preprocess
        .getInfo({}, { deadline: 10_000, ...(signal ? { signal } : {}) })
        .then((r) => new Set((r.info?.models ?? []).map((m) => `${m.name}@${m.version}`)));
      this.preprocessBundles = { at: now, list };
      list.catch(() => (this.preprocessBundles = null));
    }
    try {
      return (await this.preprocessBundles.list).has(bundle);
    } catch (err) {
      throw stageError('preprocess', err, signal ? { signal } : {});
    }
  }

  /** Resolves each head reference ("name" or "name@version") through HeadsService.GetHead. */
  async resolveHeads(refs: readonly string[], signal: AbortSignal): Promise<common.HeadInfo[]> {
    const seen = new Set<string>();
    return Promise.all(
      refs.map(async (ref, i) => {
        const at = ref.indexOf('@');
        const name = (at < 0 ? ref : ref.slice(0, at)).trim();
        const version = at < 0 ? '' : ref.slice(at + 1).trim();
        if (!name || (at >= 0 && !version)) {
          throw new CuriaError('INVALID_ARGUMENT', `heads[${i}] '${ref}' must be "name" or "name@version"`);
        }
        if (seen.has(ref)) throw new CuriaError('INVALID_ARGUMENT', `heads[${i}] '${ref}' is named twice`);
        seen.add(ref);
        try {
          const res = await this.heads.getHead({ name, version }, { signal, deadline: 10_000 });
          if (!res.head) throw new CuriaError('INTERNAL', `heads stage returned no description of '${ref}'`);
          return res.head;
        } catch (err) {
          throw stageError('heads', err, { signal });
        }
      }),
    );
  }

  /** Heads HeadsService serves (for GetInfo); empty when it cannot be reached. */
  async listHeads(signal?: AbortSignal): Promise<common.HeadInfo[]> {
    try {
      return (await this.heads.listHeads({}, { deadline: 5_000, ...(signal ? { signal } : {}) })).heads;
    } catch {
      return [];
    }
  }

  /** Closes every channel. */
  close(): void {
    for (const c of this.channels) c.close();
  }
}
