import {
  GatewayServiceBulkClientDefinition,
  analyzeStudyStart,
  collectAnalysis,
  common,
  createCuriaChannel,
  createCuriaClient,
  headFitRequests,
  heads,
  studyFiles,
  studyUploadRequests,
  type AnalysisResult,
  type AnalyzeStudyStartFields,
  type Channel,
  type Metadata,
} from '@curia/client';
import { EmbedEngine, ensureDefaultBundle } from '@curia/model';

import { LocalCluster, type LocalClusterOptions } from '../cluster/launcher.js';

/** Options of one {@link GatewayCluster.analyse} call. */
export interface AnalyseOptions {
  /** The call's deadline, ms (default 120 s). */
  readonly deadlineMs?: number;
  readonly metadata?: Metadata;
  readonly onProgress?: (p: common.Progress) => void;
}

/**
 * A demo logistic classifier of slices, as {@link GatewayCluster.fitClassifier} fits it: 2-fold
 * cross-validation with seed 1, every other option its default.
 */
export interface ClassifierFit {
  readonly head: string;
  /** `name@version` of the backbone the features came from. */
  readonly model: string;
  readonly feature: common.FeatureRequest;
  readonly labelNames: readonly string[];
  /** Each slice's features with its class index. */
  readonly samples: readonly { readonly features: common.Tensor | undefined; readonly classIndex: number }[];
  /** Make the new version what the unversioned name resolves to (FitStart.promote). Default true: the tests analyse with it at once. */
  readonly promote?: boolean;
}

/**
 * A spawned local cluster with a gateway, a gateway client, and the default bundle's engine open
 * in this process (what the cluster's answers are compared with).
 */
export class GatewayCluster {
  private constructor(
    readonly cluster: LocalCluster,
    private readonly channel: Channel,
    readonly client: ReturnType<typeof createCuriaClient<typeof GatewayServiceBulkClientDefinition>>,
    readonly engine: EmbedEngine,
    private readonly studyId: string,
    private readonly format: common.VolumeFormat,
  ) {}

  /**
   * Spawns the cluster `options` describe (it must run a gateway) and opens the engine; the
   * studies {@link analyse} sends are named `studyId`, of `format`.
   */
  static async start(
    studyId: string,
    options: LocalClusterOptions,
    format: common.VolumeFormat = common.VolumeFormat.AUTO,
  ): Promise<GatewayCluster> {
    const cluster = await LocalCluster.start(options);
    const channel = createCuriaChannel(cluster.target('gateway'));
    try {
      const client = createCuriaClient(GatewayServiceBulkClientDefinition, channel);
      const engine = await EmbedEngine.open(await ensureDefaultBundle());
      return new GatewayCluster(cluster, channel, client, engine, studyId, format);
    } catch (err) {
      channel.close();
      await cluster.stop();
      throw err;
    }
  }

  /** AnalyzeStudy of the study at `path` (a NIfTI file or a DICOM directory) through the gateway. */
  async analyse(
    path: string,
    fields: AnalyzeStudyStartFields,
    o: AnalyseOptions = {},
  ): Promise<AnalysisResult> {
    const { files } = await studyFiles(path);
    return collectAnalysis(
      this.client.analyzeStudy(
        studyUploadRequests(analyzeStudyStart(this.studyId, this.format, fields), files),
        { deadline: o.deadlineMs ?? 120_000, ...(o.metadata ? { metadata: o.metadata } : {}) },
      ),
      o.onProgress,
    );
  }

  /** Fits a demo logistic classifier through the cluster's HeadsService. */
  async fitClassifier(fit: ClassifierFit): Promise<heads.FitResponse> {
    const channel = createCuriaChannel(this.cluster.target('heads'));
    try {
      return await createCuriaClient(heads.HeadsServiceDefinition, channel).fit(
        headFitRequests(
          {
            head: fit.head,
            kind: common.HeadKind.LOGISTIC,
            task: common.HeadTask.CLASSIFICATION,
            feature: fit.feature,
            model: fit.model,
            labelNames: [...fit.labelNames],
            options: { folds: 2, seed: 1 },
            demo: true,
            promote: fit.promote ?? true,
          },
          fit.samples.map((s) => ({
            features: s.features,
            label: { $case: 'classIndex', value: s.classIndex },
          })),
        ),
      );
    } finally {
      channel.close();
    }
  }

  /** Closes the client and the engine, and stops the cluster. */
  async close(): Promise<void> {
    this.channel.close();
    await this.engine.close();
    await this.cluster.stop();
  }
}
