import { z } from 'zod';

/** Raised when environment configuration is invalid; the message names every bad variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Schemas for environment variables, shared by every service's config so each rule is written
 * once. Compose them as usual: `env.positiveInt.max(64).default(8)`, `env.commaList.default([])`.
 */
export const env = {
  /** A whole number > 0 (`"8"` → 8). */
  positiveInt: z.coerce.number().int().positive(),
  /** A whole number >= 0. */
  nonNegativeInt: z.coerce.number().int().min(0),
  /** A TCP port, 0 (any free port) to 65535. */
  port: z.coerce.number().int().min(0).max(65535),
  /** `true`/`1`/`yes` or `false`/`0`/`no`. */
  bool: z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  /** A comma-separated list: entries trimmed, empty ones dropped (`" a, ,b"` → `["a", "b"]`). */
  commaList: z.string().transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x.length > 0),
  ),
  /**
   * ONNX Runtime execution providers in preference order: a comma list of `cuda` and `cpu`
   * (case-insensitive, duplicates dropped), default `cpu`.
   */
  executionProviders: z
    .string()
    .transform((s, ctx): ('cpu' | 'cuda')[] => {
      const list = s
        .split(',')
        .map((x) => x.trim().toLowerCase())
        .filter((x) => x.length > 0);
      const bad = list.filter((p) => p !== 'cpu' && p !== 'cuda');
      if (list.length === 0 || bad.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a comma list of 'cuda' and 'cpu'${bad.length ? ` (unknown: ${bad.join(', ')})` : ''}`,
        });
        return z.NEVER;
      }
      return [...new Set(list)] as ('cpu' | 'cuda')[];
    })
    .default(['cpu']),
};

const { bool, port, positiveInt, nonNegativeInt } = env;

/**
 * Settings every Curia service reads from its environment. Each key is the environment
 * variable's name; defaults suit local mode (`npm start`).
 */
export const serviceEnvSchema = z.object({
  /** Address the gRPC server binds to. */
  CURIA_GRPC_HOST: z.string().min(1).default('0.0.0.0'),
  /** gRPC port; 0 picks a free port (tests). */
  CURIA_GRPC_PORT: port.default(0),
  /** HTTP port for /metrics, /livez and /readyz; 0 picks a free port. */
  CURIA_METRICS_PORT: port.default(0),
  /** Largest message the server accepts, bytes. Larger ones fail with RESOURCE_EXHAUSTED. */
  CURIA_MAX_RECEIVE_MESSAGE_BYTES: positiveInt.default(64 * 1024 * 1024),
  /** Largest message the server sends, bytes. */
  CURIA_MAX_SEND_MESSAGE_BYTES: positiveInt.default(64 * 1024 * 1024),
  /** Server keepalive ping interval, ms. */
  CURIA_KEEPALIVE_TIME_MS: positiveInt.default(30_000),
  /** How long to wait for a keepalive ack before closing the connection, ms. */
  CURIA_KEEPALIVE_TIMEOUT_MS: positiveInt.default(10_000),
  /**
   * HTTP/2 receive window (per stream and per connection) of the server, bytes. 64 KiB (the
   * HTTP/2 default) makes every 1 MiB slice wait for ~16 window updates.
   */
  CURIA_FLOW_CONTROL_WINDOW_BYTES: positiveInt.max(2 ** 31 - 1).default(16 * 1024 * 1024),
  /** Concurrent calls (HTTP/2 streams) per client connection. */
  CURIA_MAX_CONCURRENT_STREAMS: positiveInt.default(512),
  /** Connections are closed (GOAWAY) after this age so clients re-resolve and rebalance, ms. */
  CURIA_MAX_CONNECTION_AGE_MS: positiveInt.default(5 * 60_000),
  /** Grace after max connection age for in-flight calls to finish, ms. */
  CURIA_MAX_CONNECTION_AGE_GRACE_MS: positiveInt.default(60_000),
  /** On SIGTERM: how long in-flight calls may run before streams are ended with UNAVAILABLE, ms. */
  CURIA_SHUTDOWN_GRACE_MS: nonNegativeInt.default(20_000),
  /** PEM server certificate; with CURIA_TLS_KEY_FILE enables TLS. */
  CURIA_TLS_CERT_FILE: z.string().optional(),
  /** PEM private key for CURIA_TLS_CERT_FILE. */
  CURIA_TLS_KEY_FILE: z.string().optional(),
  /** PEM CA bundle; when set, clients must present a certificate it signed (mTLS). */
  CURIA_TLS_CLIENT_CA_FILE: z.string().optional(),
  /**
   * With CURIA_TLS_CLIENT_CA_FILE: `require` (mTLS: TLS refuses callers without a certificate the CA
   * signed) or `optional` (an edge such as the gateway: callers may instead send a bearer token;
   * a presented certificate counts only if the CA signed it).
   */
  CURIA_TLS_CLIENT_CERT: z.enum(['require', 'optional']).default('require'),
  /** How often the certificate, key and CA files are re-read (rotation without restart), ms. */
  CURIA_TLS_RELOAD_MS: positiveInt.min(100).default(60_000),
  /**
   * PEM CA bundle of the stages this service dials; when set, stage clients use TLS (verifying the
   * servers against it) and present CURIA_TLS_CERT_FILE / CURIA_TLS_KEY_FILE as client certificate.
   */
  CURIA_UPSTREAM_TLS_CA_FILE: z.string().optional(),
  /**
   * `on`: every rpc (health and reflection excepted) needs a caller identity (mTLS certificate or
   * bearer JWT) whose roles the method policy admits. `off` (local mode): no checks, GetInfo says so.
   */
  CURIA_AUTH: z.enum(['on', 'off']).default('off'),
  /** Expected `iss` of bearer tokens. */
  CURIA_AUTH_JWT_ISSUER: z.string().optional(),
  /** Expected `aud` of bearer tokens. */
  CURIA_AUTH_JWT_AUDIENCE: z.string().optional(),
  /** JWKS (JSON Web Key Set) file with the token signing keys; re-read when it changes. */
  CURIA_AUTH_JWKS_FILE: z.string().optional(),
  /** JWKS URL with the token signing keys (fetched and cached; refreshed on an unknown key id). */
  CURIA_AUTH_JWKS_URL: z.url().optional(),
  /** Claim of a bearer token that holds its roles (a list or a space-separated string). */
  CURIA_AUTH_JWT_ROLES_CLAIM: z.string().min(1).default('roles'),
  /**
   * Roles of mTLS identities: `identity=role[,role];…`, the identity being the certificate's
   * subject CN or one of its SANs (DNS name or URI), e.g. `curia-gateway=client;ops=admin`.
   */
  CURIA_AUTH_CERT_ROLES: z.string().default(''),
  /** JSON file overriding the per-method policy (see `auth-policy.ts`); default: built-in policy. */
  CURIA_AUTH_POLICY_FILE: z.string().optional(),
  /**
   * Secret key file for the keyed hash (HMAC-SHA256) of study ids in audit lines, logs and traces.
   * Unset: a random key per process (hashes then differ between processes and restarts).
   */
  CURIA_AUDIT_KEY_FILE: z.string().optional(),
  /** pino log level. */
  CURIA_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Replica label attached to logs and GetInfo (set by the launcher or the pod name). */
  CURIA_REPLICA: z.string().default(''),
  /** Collect Node.js process metrics (event loop lag, heap, GC) on /metrics. */
  CURIA_PROCESS_METRICS: bool.default(true),
  /**
   * Capacity of the process's memory budget (bytes that admitted calls may decode into at once);
   * wins over CURIA_MEMORY_BUDGET_FRACTION. Unset: the fraction of the pod's memory limit.
   */
  CURIA_MEMORY_BUDGET_BYTES: positiveInt.optional(),
  /**
   * Share of the cgroup (pod) memory limit given to the memory budget, or of the machine's memory
   * when there is no limit; the rest is the runtime, buffers in flight and slack.
   */
  CURIA_MEMORY_BUDGET_FRACTION: z.coerce.number().gt(0).max(1).default(0.6),
  /** Longest a call waits for room in the memory budget before RESOURCE_EXHAUSTED, ms (0: no wait). */
  CURIA_MEMORY_BUDGET_WAIT_MS: nonNegativeInt.max(60_000).default(1000),
});

/** Parsed base service settings. */
export type ServiceEnv = z.infer<typeof serviceEnvSchema>;

/**
 * Validates `env` against a zod object schema whose keys are environment variable names.
 * Throws a ConfigError listing every invalid variable with the reason, e.g.
 * `CURIA_GRPC_PORT: expected a number <= 65535 (got "70000")`.
 */
export function loadConfig<S extends z.ZodObject>(
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<S> {
  // Empty strings mean "unset", as in most twelve-factor setups.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const key = issue.path.join('.');
    const got = key in cleaned ? ` (got ${JSON.stringify(cleaned[key])})` : '';
    return `  ${key}: ${issue.message}${got}`;
  });
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}

/** Extends the base schema with service-specific variables. */
export function serviceSchema<T extends z.ZodRawShape>(extra: T) {
  return serviceEnvSchema.extend(extra);
}

export { z };
