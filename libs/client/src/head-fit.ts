import { heads } from '@curia/proto';

/** A HeadsService Fit start; unset fields take their proto defaults. */
export type HeadFitStartFields = Parameters<typeof heads.FitStart.fromPartial>[0];

/**
 * The HeadsService Fit request stream: `start`, then the labelled samples in messages of at most
 * `batch` samples each.
 */
// eslint-disable-next-line @typescript-eslint/require-await -- Fit takes an AsyncIterable
export async function* headFitRequests(
  start: HeadFitStartFields,
  samples: readonly heads.FitSample[],
  batch = 1024,
): AsyncGenerator<heads.FitRequest> {
  yield { msg: { $case: 'start', value: heads.FitStart.fromPartial(start) } };
  for (let i = 0; i < samples.length; i += batch)
    yield { msg: { $case: 'samples', value: { samples: samples.slice(i, i + batch) } } };
}
