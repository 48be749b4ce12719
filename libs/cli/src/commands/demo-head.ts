import {
  analyzeStudyStart,
  ClientError,
  common,
  createCuriaClient,
  headFitRequests,
  heads,
  Status,
  type AnalysisResult,
  type AnalyzeStudyStartFields,
  type Channel,
  type HeadFitStartFields,
} from '@curia/client';
import type { Phantom } from '@curia/phantom';

/** Name of the demo head the main job fits on the phantom (slice level: which body level a slice shows). */
export const DEMO_HEAD = 'demo-body-level';

/** The demo head's classes, from the organs present in a slice of the phantom's label map. */
export const DEMO_LEVELS = ['lower-abdomen', 'mid-abdomen', 'upper-abdomen'] as const;

/**
 * The body level of slice `index` along `axis` of the phantom: upper abdomen where the stomach
 * is, mid abdomen where the liver is, lower abdomen below it.
 */
export function phantomLevel(p: Phantom, axis: number, index: number): number {
  const [nx, ny, nz] = p.dims;
  const stomach = p.labelNames.indexOf('stomach');
  const liver = p.labelNames.indexOf('liver');
  let hasLiver = false;
  const sizes = [nx, ny, nz];
  const strides = [1, nx, nx * ny];
  const [a, b] = [0, 1, 2].filter((d) => d !== axis) as [number, number];
  for (let u = 0; u < sizes[a]!; u++) {
    for (let v = 0; v < sizes[b]!; v++) {
      const label = p.labels[index * strides[axis]! + u * strides[a]! + v * strides[b]!];
      if (label === stomach) return 2;
      if (label === liver) hasLiver = true;
    }
  }
  return hasLiver ? 1 : 0;
}

/** Outcome of {@link ensureDemoHead}. */
export interface DemoHead {
  readonly ref: string;
  readonly fitted: boolean;
  /** Cross-validated balanced accuracy when just fitted. */
  readonly cvBalancedAccuracy?: number | undefined;
  readonly samples?: number;
}

/**
 * Loads the demo head from HeadsService, or fits it: the CLS embeddings of every phantom slice
 * (from `analysis`, an AnalyzeStudy run with a CLS output) labelled with the slice's body level,
 * a balanced logistic regression with 3-fold CV, stored as a demo head for `modelRef` under
 * `name` ({@link DEMO_HEAD} unless a test wants a second one).
 */
export async function ensureDemoHead(
  headsChannel: Channel,
  modelRef: string,
  phantom: Phantom,
  embedPhantom: () => Promise<AnalysisResult>,
  name: string = DEMO_HEAD,
): Promise<DemoHead> {
  const client = createCuriaClient(heads.HeadsServiceDefinition, headsChannel);
  try {
    const { head } = await client.getHead({ name, version: '' });
    if (head && (head.model === modelRef || head.model === '')) {
      return { ref: `${head.name}@${head.version}`, fitted: false };
    }
  } catch (err) {
    if (!(err instanceof ClientError && err.code === Status.NOT_FOUND)) throw err;
  }
  const analysis = await embedPhantom();
  const samples: heads.FitSample[] = analysis.embeddings.map((e) => {
    const m = e.mapping!;
    return {
      features: e.features[0]!.tensor,
      label: { $case: 'classIndex', value: phantomLevel(phantom, m.inputAxis, m.inputSliceIndex) },
    };
  });
  const start: HeadFitStartFields = {
    head: name,
    kind: common.HeadKind.LOGISTIC,
    task: common.HeadTask.CLASSIFICATION,
    feature: { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
    model: modelRef,
    labelNames: [...DEMO_LEVELS],
    options: { l2: 1, classWeight: heads.ClassWeight.BALANCED, folds: 3, seed: 7 },
    description: 'DEMO: body level of a synthetic phantom slice, fitted on demo weights by `curia up`',
    dataset: `curia phantom seed ${phantom.seed}`,
    idempotencyKey: `${name}:${modelRef}:${phantom.seed}`,
    demo: true,
    // The demo head for this backbone is what `curia analyze` runs unversioned (an older version may sit on another).
    promote: true,
  };
  const res = await client.fit(headFitRequests(start, samples), { deadline: 120_000 });
  return {
    ref: `${res.head?.name}@${res.head?.version}`,
    fitted: true,
    cvBalancedAccuracy: res.training?.cv?.mean?.balancedAccuracy,
    samples: samples.length,
  };
}

/** The AnalyzeStudy start of the self-check runs (the caller adds heads or outputs). */
export function selfCheckStart(fields: AnalyzeStudyStartFields): AnalyzeStudyStartFields {
  return analyzeStudyStart('self-check-phantom', common.VolumeFormat.NIFTI, fields);
}
