import { common, type heads } from '@curia/client';

/**
 * A Fit request stream: `start` (a LOGISTIC CLASSIFICATION head `x` on CLS features of
 * `tiny-mlp@1`, with `start`'s fields over those), then `samples` in batches of `batch`.
 */
export function fitStream(
  start: Partial<heads.FitStart>,
  samples: heads.FitSample[],
  batch = 16,
): AsyncIterable<heads.FitRequest> {
  const full: heads.FitStart = {
    head: 'x',
    kind: common.HeadKind.LOGISTIC,
    task: common.HeadTask.CLASSIFICATION,
    feature: { kind: { $case: 'cls', value: { prenorm: false } }, dtype: common.DType.F32 },
    model: 'tiny-mlp@1',
    labelNames: [],
    description: '',
    unit: '',
    dataset: 'synthetic',
    idempotencyKey: '',
    demo: true,
    promote: false,
    ...start,
  };
  // eslint-disable-next-line @typescript-eslint/require-await -- an async iterable is what Fit takes
  return (async function* () {
    yield { msg: { $case: 'start' as const, value: full } };
    for (let i = 0; i < samples.length; i += batch)
      yield { msg: { $case: 'samples' as const, value: { samples: samples.slice(i, i + batch) } } };
  })();
}
