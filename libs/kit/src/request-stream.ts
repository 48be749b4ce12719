import { CuriaError } from '@curia/errors';

/** A request message with a `oneof msg` (every Curia client- or bidi-streaming rpc). */
type OneofRequest = { readonly msg?: { readonly $case: string; readonly value: unknown } | undefined };

/** The `start` variant of a request stream's messages. */
type StartOf<R extends OneofRequest> =
  Extract<NonNullable<R['msg']>, { $case: 'start' }> extends { readonly value: infer V } ? V : never;

/**
 * Reads the first message of a request stream, which must be `start` (INVALID_ARGUMENT naming
 * `rpc` otherwise), and returns it with the iterator positioned on the rest of the stream.
 */
export async function readStart<R extends OneofRequest>(
  requests: AsyncIterable<R>,
  rpc: string,
): Promise<{ readonly start: StartOf<R>; readonly rest: AsyncIterator<R> }> {
  const rest = requests[Symbol.asyncIterator]();
  const first = await rest.next();
  const m = first.done ? undefined : first.value.msg;
  if (m?.$case !== 'start')
    throw new CuriaError('INVALID_ARGUMENT', `the first ${rpc} message must be \`start\``);
  return { start: m.value as StartOf<R>, rest };
}
