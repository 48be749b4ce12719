import { parseRef } from '@curia/client';
import { CuriaError, isCuriaError } from '@curia/errors';
import { checkHeadName, type HeadRegistry, type Versioned } from '@curia/heads';
import type { ExecutionProviderName } from '@curia/model';
import { common, segment } from '@curia/proto';
import { checkWritable, openHeadRegistry, type OpenHeadRegistryOptions } from '@curia/registry';
import { SEGMENT_HEAD_CODEC, SegmenterRunner, type SegmentHeadRecord } from '@curia/segment';

import { PATCH_TOKENS } from './study.js';

/** The prompt head: clicks and boxes, no weights, any backbone. */
export const CLICK_HEAD = 'click';
const CLICK_VERSION = '1';

/** A head a request resolved to: a fitted head, or the prompt head. */
export type ResolvedHead =
  | {
      readonly kind: 'fitted';
      readonly stored: Versioned<SegmentHeadRecord>;
      readonly wire: segment.SegmentHead;
    }
  | { readonly kind: 'click'; readonly wire: segment.SegmentHead };

const requirements = (): common.FeatureRequirement => ({
  features: [PATCH_TOKENS],
  slices: { selection: { $case: 'all', value: {} } },
  level: common.HeadInputLevel.SLICE,
  requiresMask: false,
});

/**
 * The wire description of a stored segmentation head; `promoted` when it is what its unversioned
 * name resolves to (SegmentHeads.wire computes it).
 */
export function wireHead(v: Versioned<SegmentHeadRecord>, promoted = false): segment.SegmentHead {
  const m = v.item.meta;
  return {
    info: {
      name: v.name,
      version: v.version,
      kind: common.HeadKind.UNSPECIFIED,
      task: common.HeadTask.UNSPECIFIED,
      labels: m.classes.map((c) => c.name),
      requirements: requirements(),
      demo: m.demo,
      model: m.model,
      modelSha256: m.modelSha256,
      description: m.description,
      unit: '',
      isDefault: false,
      promoted,
    },
    classes: m.classes.map((c) => ({ label: c.name, value: c.value })),
    kind: m.kind === 'linear' ? segment.SegmentHeadKind.LINEAR : segment.SegmentHeadKind.CONV3X3,
    promptless: true,
    acceptsPoints: false,
    acceptsBoxes: true,
    smoothAcrossSlices: m.smoothAcrossSlices,
    fit: {
      cvDice: Object.entries(m.fit.cvDice).map(([label, dice]) => ({ label, dice })),
      slices: m.fit.slices,
      tokens: m.fit.tokens,
      folds: m.fit.folds,
      timings: Object.entries(m.fit.timingsMs).map(([stage, millis]) => ({ stage, millis })),
    },
  };
}

const CLICK_WIRE: segment.SegmentHead = {
  info: {
    name: CLICK_HEAD,
    version: CLICK_VERSION,
    kind: common.HeadKind.UNSPECIFIED,
    task: common.HeadTask.UNSPECIFIED,
    labels: [],
    requirements: requirements(),
    demo: false,
    model: '',
    modelSha256: '',
    description:
      'Point prompts without training: tokens similar to the positive clicks (and unlike the negative ones), kept connected to them and propagated to neighbouring slices; boxes restrict the result. Works with any backbone.',
    unit: '',
    isDefault: false,
    promoted: true,
  },
  classes: [],
  kind: segment.SegmentHeadKind.SIMILARITY,
  promptless: false,
  acceptsPoints: true,
  acceptsBoxes: true,
  smoothAcrossSlices: false,
};

/** The registry kind of segmentation heads in the shared tables (the Heads service uses `heads`). */
export const SEGMENT_REGISTRY_KIND = 'segment-heads';

/** How to open the fitted heads: the directory, or the shared registry when `dsn` is set. */
export type SegmentHeadsOptions = Omit<OpenHeadRegistryOptions<SegmentHeadRecord>, 'kind' | 'codec'> & {
  /** Who stores the versions this replica fits (service and replica); '' = unknown. */
  readonly creator?: string;
};

/**
 * The segmentation heads this replica serves: the fitted heads (the directory store, or the shared
 * PostgreSQL registry every replica reads and writes, whose LISTEN/NOTIFY brings another replica's
 * fit into this cache at once), the prompt head `click`, and one ORT session per fitted head
 * version, created on first use.
 */
export class SegmentHeads {
  private readonly runners = new Map<string, Promise<SegmenterRunner>>();

  private constructor(
    readonly store: HeadRegistry<SegmentHeadRecord>,
    /** Where the fitted heads live, for logs: the directory, or the database without its password. */
    readonly where: string,
    private readonly providers: readonly ExecutionProviderName[],
    private readonly creator: string,
  ) {}

  /**
   * Opens the fitted heads (`options.dsn` set: the shared registry, which throws UNAVAILABLE or
   * FAILED_PRECONDITION when its database cannot be used, never naming the password).
   */
  static async open(
    options: SegmentHeadsOptions,
    providers: readonly ExecutionProviderName[],
  ): Promise<SegmentHeads> {
    const { creator = '', ...rest } = options;
    const { registry, where } = await openHeadRegistry({
      ...rest,
      kind: SEGMENT_REGISTRY_KIND,
      codec: SEGMENT_HEAD_CODEC,
    });
    return new SegmentHeads(registry, where, providers, creator);
  }

  /** The served version of every fitted head (the promoted one), the prompt head first. */
  list(): segment.SegmentHead[] {
    return [CLICK_WIRE, ...this.store.resolved().map((v) => wireHead(v, true))];
  }

  /** The wire description of a stored version, `info.promoted` set when its unversioned name resolves to it. */
  wire(v: Versioned<SegmentHeadRecord>): segment.SegmentHead {
    let promoted = false;
    try {
      promoted = this.store.resolve(v.name).version === v.version;
    } catch {
      // not stored (any more): not promoted
    }
    return wireHead(v, promoted);
  }

  /**
   * Stores `record` as the next version of `name`. The unversioned name moves to it only with
   * `promote` (or when it is the name's first version); `caller` is recorded with the version.
   * UNAVAILABLE while the shared registry's database is away, RESOURCE_EXHAUSTED past a quota;
   * nothing is stored then.
   */
  add(
    name: string,
    record: SegmentHeadRecord,
    options: { readonly promote?: boolean; readonly caller?: string } = {},
  ): Promise<Versioned<SegmentHeadRecord>> {
    return this.store.add(name, record, {
      creator: this.creatorFor(options.caller),
      promote: options.promote ?? false,
    });
  }

  /**
   * Makes `name@version` what the unversioned name resolves to, on every replica; returns it with
   * the version that resolved before. INVALID_ARGUMENT for the prompt head, a bad name or version;
   * NOT_FOUND (listing the versions) for one that is not stored.
   */
  async promote(
    name: string,
    version: string,
    caller: string,
  ): Promise<{ readonly head: segment.SegmentHead; readonly previous: string | undefined }> {
    if (!name) throw new CuriaError('INVALID_ARGUMENT', 'name is required');
    if (name === CLICK_HEAD) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `the prompt head '${CLICK_HEAD}' has a single built-in version: there is nothing to promote`,
      );
    }
    checkHeadName(name);
    if (!version) throw new CuriaError('INVALID_ARGUMENT', 'version is required');
    this.checkWritable();
    try {
      const p = await this.store.promote(name, version, { creator: this.creatorFor(caller) });
      return { head: wireHead(p, true), previous: p.previous };
    } catch (e) {
      if (isCuriaError(e) && e.code === 'NOT_FOUND' && !this.store.all().some((v) => v.name === name)) {
        throw new CuriaError('NOT_FOUND', `no segmentation head named '${name}'`, { cause: e });
      }
      throw e;
    }
  }

  /** What the registry records as the creator: this service replica, and the caller when known. */
  private creatorFor(caller: string | undefined): string {
    if (!caller) return this.creator;
    return this.creator ? `${this.creator} for ${caller}` : caller;
  }

  /** Throws at once (UNAVAILABLE) while a shared registry has lost its database: refuse a Fit before its work. */
  checkWritable(): void {
    checkWritable(this.store, 'store a fitted segmentation head');
  }

  /** Resolves "name" or "name@version" (`field` names the request field in errors); NOT_FOUND lists the heads. */
  resolve(ref: string, field: string): ResolvedHead {
    if (ref.trim() === '') {
      const known = this.list().map((h) => h.info!.name);
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `${field} is empty: name a segmentation head (${known.join(', ')}), or send point prompts for '${CLICK_HEAD}'`,
      );
    }
    const { name, version } = parseRef(ref, field);
    if (name === CLICK_HEAD) {
      if (version && version !== CLICK_VERSION) {
        throw new CuriaError('NOT_FOUND', `${field}: head '${CLICK_HEAD}' has only version ${CLICK_VERSION}`);
      }
      return { kind: 'click', wire: CLICK_WIRE };
    }
    try {
      const stored = this.store.get(name, version, 'segmentation head');
      return { kind: 'fitted', stored, wire: this.wire(stored) };
    } catch (e) {
      const known = this.list()
        .map((h) => h.info!.name)
        .join(', ');
      throw new CuriaError('NOT_FOUND', `${field}: ${(e as Error).message} (heads: ${known})`);
    }
  }

  /** The ORT session of a fitted head version (created once, shared by calls). */
  runner(v: Versioned<SegmentHeadRecord>): Promise<SegmenterRunner> {
    const key = `${v.name}@${v.version}`;
    let r = this.runners.get(key);
    if (!r) {
      r = SegmenterRunner.create(v.item.weights, {
        grid: v.item.meta.imageSize / v.item.meta.patchSize,
        executionProviders: this.providers,
      });
      this.runners.set(key, r);
      r.catch(() => this.runners.delete(key));
    }
    return r;
  }

  /** Releases every session and the registry's connections. */
  async close(): Promise<void> {
    const all = [...this.runners.values()];
    this.runners.clear();
    await Promise.all(all.map(async (r) => (await r.catch(() => null))?.close()));
    await this.store.close();
  }
}
