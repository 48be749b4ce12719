/**
 * Runtime settings of a Curia service process, shared by everything that starts one: the
 * container entrypoint (deploy/entrypoint.sh spells out the same values), `curia up`'s launcher
 * and the benchmarks' server processes.
 */

/**
 * Node flags of a service process. A larger initial old space: with ~25 MB of live heap V8
 * otherwise runs a full collection every few 1 MiB slice buffers, which measured as about half of
 * the gateway's CPU in `npm run bench:e2e`. `CURIA_NODE_INITIAL_OLD_SPACE_MB` overrides (0: off).
 */
export function serviceNodeFlags(env: NodeJS.ProcessEnv): string[] {
  const mb = Number(env.CURIA_NODE_INITIAL_OLD_SPACE_MB ?? 256);
  return Number.isInteger(mb) && mb > 0 ? [`--initial-old-space-size=${mb}`] : [];
}

/**
 * glibc malloc tunables of a service process (read once, at process start). Every gRPC message
 * of a slice is a ~1 MiB buffer (the transport's framing copy among them); above glibc's dynamic
 * mmap threshold each one is a fresh mapping, and the default trim threshold hands freed heap
 * back at once, so every slice costs ~250 page faults (measured: 0.3 ms of system CPU per slice
 * on the preprocess event loop, `npm run bench:preprocess`). A 32 MiB mmap threshold and a
 * 128 MiB trim threshold keep those buffers in reused heap memory. The cost: freed heap up to the
 * trim threshold stays resident (Embed's 10-minute soak ran ~25 MiB higher RSS; its stability check
 * passed). Ignored by other C libraries.
 */
export const SERVICE_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(128 * 1024 * 1024),
};

/** `env` with {@link SERVICE_MALLOC_ENV} added where it does not set those variables itself. */
export function serviceProcessEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...SERVICE_MALLOC_ENV, ...env };
}
