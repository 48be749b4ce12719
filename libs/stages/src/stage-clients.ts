import {
  createCuriaChannel,
  type ClientTls,
  createCuriaClient,
  parseRef,
  refMatches,
  type Channel,
  type Client,
  type CuriaCallOptions,
} from '@curia/client';
import { CuriaError } from '@curia/errors';
import {
  EmbedServiceBulkClientDefinition,
  heads,
  PreprocessServiceBulkDefinition,
  segment,
  type common,
} from '@curia/proto';

import type { EmbedClient } from './embed-stream.js';
import type { PreprocessClient } from './preprocess-stream.js';
import { stageError } from './stage-errors.js';

/** A HeadsService client. */
export type HeadsClient = Client<typeof heads.HeadsServiceDefinition, CuriaCallOptions>;

/** A SegmentService client. */
export type SegmentClient = Client<typeof segment.SegmentServiceDefinition, CuriaCallOptions>;

/** Addresses of the stages a service calls: `host:port` (DNS, every record) or a comma list of `ip:port`. */
export interface StageTargets {
  readonly preprocess?: string;
  readonly embed?: string;
  readonly heads?: string;
  readonly segment?: string;
}

/** Options of {@link StageClients}. */
export interface StageClientOptions {
  /** Attempts per idempotent unary call on UNAVAILABLE, including the first. */
  readonly attempts: number;
  /** How long model and bundle listings are reused before asking again, ms. */
  readonly catalogTtlMs: number;
  /** Called before each retry of a unary call, with the stage's name (for metrics). */
  readonly onRetry?: (stage: string) => void;
  /** Connection attempt timeout, ms (default 5 s). */
  readonly connectTimeoutMs?: number;
  /** TLS (and the client certificate to present) for every stage; plaintext when unset. */
  readonly tls?: ClientTls;
}

interface Listing<T> {
  readonly at: number;
  readonly list: Promise<T>;
}

/**
 * Clients of the stage services an orchestrating service calls, each over one round-robin channel
 * to all the stage's replicas, plus the lookups every orchestrator needs before it starts work:
 * which backbone a request names, whether Preprocess knows that backbone's bundle, which heads a
 * request names. Only stages with a target are connected; asking for another is a programming
 * error (INTERNAL).
 */
export class StageClients {
  private readonly channels: Channel[] = [];
  private readonly clients: {
    preprocess?: PreprocessClient;
    embed?: EmbedClient;
    heads?: HeadsClient;
    segment?: SegmentClient;
  } = {};
  private segmentHeads: Listing<segment.SegmentHead[]> | null = null;
  private models: Listing<common.ModelInfo[]> | null = null;
  private bundles: Listing<Set<string>> | null = null;

  constructor(
    targets: StageTargets,
    private readonly options: StageClientOptions,
  ) {
    const connect = (target: string): Channel => {
      const c = createCuriaChannel(target, {
        connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
        ...(options.tls ? { tls: options.tls } : {}),
      });
      this.channels.push(c);
      return c;
    };
    const retry = (stage: string) => ({
      retryMaxAttempts: options.attempts,
      onRetry: () => options.onRetry?.(stage),
    });
    if (targets.preprocess) {
      this.clients.preprocess = createCuriaClient(
        PreprocessServiceBulkDefinition,
        connect(targets.preprocess),
        retry('preprocess'),
      );
    }
    if (targets.embed) {
      this.clients.embed = createCuriaClient(
        EmbedServiceBulkClientDefinition,
        connect(targets.embed),
        retry('embed'),
      );
    }
    if (targets.segment) {
      this.clients.segment = createCuriaClient(
        segment.SegmentServiceDefinition,
        connect(targets.segment),
        retry('segment'),
      );
    }
    if (targets.heads) {
      this.clients.heads = createCuriaClient(
        heads.HeadsServiceDefinition,
        connect(targets.heads),
        retry('heads'),
      );
    }
  }

  /** The PreprocessService client. */
  get preprocess(): PreprocessClient {
    return this.need(this.clients.preprocess, 'preprocess');
  }

  /** The EmbedService client. */
  get embed(): EmbedClient {
    return this.need(this.clients.embed, 'embed');
  }

  /** The HeadsService client. */
  get heads(): HeadsClient {
    return this.need(this.clients.heads, 'heads');
  }

  /** The SegmentService client. */
  get segment(): SegmentClient {
    return this.need(this.clients.segment, 'segment');
  }

  /**
   * Resolves segmentation head references ("name" or "name@version") against what SegmentService
   * serves (its GetInfo, re-asked at most every `catalogTtlMs`); NOT_FOUND lists the heads,
   * INVALID_ARGUMENT names `field[i]` for a malformed or repeated reference.
   */
  async resolveSegmentHeads(
    refs: readonly string[],
    signal: AbortSignal,
    field: string,
  ): Promise<segment.SegmentHead[]> {
    if (refs.length === 0) return [];
    const now = Date.now();
    if (!this.segmentHeads || now - this.segmentHeads.at > this.options.catalogTtlMs) {
      const list = this.segment.getInfo({}, { deadline: 10_000, signal }).then((r) => r.segmentHeads);
      const entry = { at: now, list };
      this.segmentHeads = entry;
      list.catch(() => {
        if (this.segmentHeads === entry) this.segmentHeads = null;
      });
    }
    let served: segment.SegmentHead[];
    try {
      served = await this.segmentHeads.list;
    } catch (err) {
      throw stageError('segment', err, { signal });
    }
    const seen = new Set<string>();
    return refs.map((ref, i) => {
      const r = parseRef(ref, `${field}[${i}]`);
      if (seen.has(ref)) throw new CuriaError('INVALID_ARGUMENT', `${field}[${i}] '${ref}' is named twice`);
      seen.add(ref);
      const matches = served.filter((h) => h.info && refMatches(r, h.info.name, h.info.version));
      // Without a version, the latest (GetInfo lists the latest version of each head).
      const hit = matches.at(-1);
      if (!hit) {
        const known = served.map((h) => `${h.info?.name}@${h.info?.version}`).join(', ') || 'none';
        throw new CuriaError(
          'NOT_FOUND',
          `${field}[${i}]: segmentation head '${ref}' is not served (heads: ${known})`,
        );
      }
      return hit;
    });
  }

  /** The backbones Embed serves (default first), re-asked at most every `catalogTtlMs`. */
  async listModels(signal?: AbortSignal): Promise<common.ModelInfo[]> {
    const now = Date.now();
    if (!this.models || now - this.models.at > this.options.catalogTtlMs) {
      const list = this.embed
        .listModels({}, { deadline: 10_000, ...(signal ? { signal } : {}) })
        .then((r) => r.models);
      const entry = { at: now, list };
      this.models = entry;
      list.catch(() => {
        if (this.models === entry) this.models = null;
      });
    }
    try {
      return await this.models.list;
    } catch (err) {
      throw stageError('embed', err, signal ? { signal } : {});
    }
  }

  /**
   * Resolves `model` ("" for the default, "name" for any version, "name@version") against what
   * Embed serves; NOT_FOUND lists the models served, INVALID_ARGUMENT names `field`.
   */
  async resolveModel(model: string, signal?: AbortSignal, field = 'model'): Promise<common.ModelInfo> {
    const ref = model.trim() === '' ? undefined : parseRef(model, field);
    const models = await this.listModels(signal);
    const found = ref
      ? models.find((m) => refMatches(ref, m.name, m.version))
      : (models.find((m) => m.isDefault) ?? models[0]);
    if (!found) {
      const known = models.map((m) => `${m.name}@${m.version}`).join(', ') || 'none';
      throw new CuriaError('NOT_FOUND', `model '${model || '(default)'}' is not served (known: ${known})`);
    }
    return found;
  }

  /** True when PreprocessService knows the bundle `name@version` (so it can apply that bundle's spec). */
  async preprocessKnows(bundle: string, signal?: AbortSignal): Promise<boolean> {
    const now = Date.now();
    if (!this.bundles || now - this.bundles.at > this.options.catalogTtlMs) {
      const list = this.preprocess
        .getInfo({}, { deadline: 10_000, ...(signal ? { signal } : {}) })
        .then((r) => new Set((r.info?.models ?? []).map((m) => `${m.name}@${m.version}`)));
      const entry = { at: now, list };
      this.bundles = entry;
      list.catch(() => {
        if (this.bundles === entry) this.bundles = null;
      });
    }
    try {
      return (await this.bundles.list).has(bundle);
    } catch (err) {
      throw stageError('preprocess', err, signal ? { signal } : {});
    }
  }

  /**
   * Resolves head references ("name" or "name@version") through HeadsService.GetHead, all at once;
   * INVALID_ARGUMENT names `field[i]` for a malformed or repeated reference.
   */
  async resolveHeads(
    refs: readonly string[],
    signal: AbortSignal,
    field = 'heads',
  ): Promise<common.HeadInfo[]> {
    const seen = new Set<string>();
    return Promise.all(
      refs.map(async (ref, i) => {
        const { name, version } = parseRef(ref, `${field}[${i}]`);
        if (seen.has(ref)) throw new CuriaError('INVALID_ARGUMENT', `${field}[${i}] '${ref}' is named twice`);
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

  /** The heads HeadsService serves (for GetInfo); empty when it cannot be reached. */
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

  private need<T>(client: T | undefined, stage: string): T {
    if (!client) throw new CuriaError('INTERNAL', `this service has no ${stage} target configured`);
    return client;
  }
}
