import { CuriaError } from '@curia/errors';
import { InferenceSession } from 'onnxruntime-node';

/** Execution providers a Curia ONNX session may use. */
export type ExecutionProviderName = 'cpu' | 'cuda';

/** A session and the provider that loaded it. */
export interface ProviderSession {
  readonly session: InferenceSession;
  readonly provider: ExecutionProviderName;
  /** Why preferred providers were skipped (empty when the first one loaded). */
  readonly fallbackReasons: readonly string[];
}

/**
 * Creates an ORT session with the first provider of `requested` (in preference order) that loads,
 * trying each alone so the one in use is known exactly; a missing GPU provider is reported in
 * `fallbackReasons`, not as an error. FAILED_PRECONDITION when none loads; INVALID_ARGUMENT for an
 * empty or unknown provider list.
 */
export async function createProviderSession(
  model: string | Uint8Array,
  base: InferenceSession.SessionOptions,
  requested: readonly ExecutionProviderName[],
  opts: { readonly cudaDeviceId?: number; readonly signal?: AbortSignal | undefined } = {},
): Promise<ProviderSession> {
  if (requested.length === 0)
    throw new CuriaError('INVALID_ARGUMENT', 'executionProviders must not be empty');
  for (const ep of requested) {
    if (ep !== 'cpu' && ep !== 'cuda') {
      throw new CuriaError('INVALID_ARGUMENT', `executionProviders: unknown provider '${String(ep)}'`);
    }
  }
  const reasons: string[] = [];
  for (const ep of requested) {
    if (opts.signal?.aborted) throw new CuriaError('CANCELLED', 'session creation cancelled');
    const provider = ep === 'cuda' ? { name: 'cuda', deviceId: opts.cudaDeviceId ?? 0 } : { name: 'cpu' };
    try {
      // A missing GPU provider is expected here, not an error worth ORT's stderr log.
      const quiet = ep === 'cpu' ? {} : { logSeverityLevel: 4 as const };
      const options = { ...base, ...quiet, executionProviders: [provider] };
      const session =
        typeof model === 'string'
          ? await InferenceSession.create(model, options)
          : await InferenceSession.create(model, options);
      return { session, provider: ep, fallbackReasons: reasons };
    } catch (e) {
      reasons.push(`${ep}: ${(e as Error).message.split('\n')[0] ?? 'failed'}`);
    }
  }
  throw new CuriaError(
    'FAILED_PRECONDITION',
    `no execution provider could load the model (${reasons.join('; ')})`,
  );
}
