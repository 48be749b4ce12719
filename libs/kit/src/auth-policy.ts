import { readFileSync } from 'node:fs';

import { z } from 'zod';

import { ConfigError } from './config.js';

/** Role that admits any caller, even one without credentials. */
export const PUBLIC_ROLE = '*';

/** One rule: callers holding any of `roles` may call the methods `method` matches. */
export interface PolicyRule {
  /**
   * `/package.Service/Method`, `/package.Service/*` (every method of a service), a star then
   * `/Method` (that method of every service) or `*` (everything).
   */
  readonly method: string;
  /** Roles admitted; `*` admits callers without credentials. */
  readonly roles: readonly string[];
}

/** A per-method policy: the first rule whose pattern matches a method decides. */
export interface MethodPolicy {
  readonly rules: readonly PolicyRule[];
}

/**
 * The built-in policy: health and reflection for anyone (kubelet, grpcurl); writes to the head
 * registries (Fit, PromoteHead, import, delete) for `admin`; every other rpc (GetInfo, Analyze,
 * Embed, Predict, Segment, Register, listing heads) for `client` and `admin`.
 */
export const DEFAULT_POLICY: MethodPolicy = {
  rules: [
    { method: '/grpc.health.v1.Health/*', roles: [PUBLIC_ROLE] },
    { method: '/grpc.reflection.v1.ServerReflection/*', roles: [PUBLIC_ROLE] },
    { method: '/grpc.reflection.v1alpha.ServerReflection/*', roles: [PUBLIC_ROLE] },
    { method: '*/Fit', roles: ['admin'] },
    { method: '*/PromoteHead', roles: ['admin'] },
    { method: '*/ImportHead', roles: ['admin'] },
    { method: '*/DeleteHead', roles: ['admin'] },
    { method: '*', roles: ['client', 'admin'] },
  ],
};

const policySchema = z.object({
  rules: z
    .array(
      z.object({
        method: z.string().regex(/^(\*|\*\/[A-Za-z0-9_]+|\/[A-Za-z0-9_.]+\/(\*|[A-Za-z0-9_]+))$/, {
          message: "expected '/pkg.Service/Method', '/pkg.Service/*', '*/Method' or '*'",
        }),
        roles: z.array(z.string().min(1)).min(1),
      }),
    )
    .min(1),
});

/** Reads a policy file (JSON `{"rules": [{"method": …, "roles": […]}]}`); throws naming the problem. */
export function loadPolicy(file: string): MethodPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`CURIA_AUTH_POLICY_FILE: cannot read JSON from ${file}: ${(err as Error).message}`);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`CURIA_AUTH_POLICY_FILE ${file}: ${why}`);
  }
  return parsed.data;
}

/** True when `pattern` (see {@link PolicyRule.method}) matches the full method path `method`. */
export function methodMatches(pattern: string, method: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*/')) return method.endsWith(pattern.slice(1));
  if (pattern.endsWith('/*')) return method.startsWith(pattern.slice(0, -1));
  return pattern === method;
}

/** Roles the policy admits for `method`; empty when no rule matches (then nobody may call it). */
export function rolesFor(policy: MethodPolicy, method: string): readonly string[] {
  return policy.rules.find((r) => methodMatches(r.method, method))?.roles ?? [];
}

/**
 * Parses `CURIA_AUTH_CERT_ROLES` (`identity=role[,role];…`) into identity → roles.
 * Throws on an entry without `=` or roles.
 */
export function parseCertRoles(spec: string): ReadonlyMap<string, readonly string[]> {
  const map = new Map<string, string[]>();
  for (const entry of spec
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const eq = entry.lastIndexOf('=');
    const identity = entry.slice(0, eq).trim();
    const roles = entry
      .slice(eq + 1)
      .split(',')
      .map((r) => r.trim())
      .filter(Boolean);
    if (eq <= 0 || identity === '' || roles.length === 0) {
      throw new ConfigError(
        `CURIA_AUTH_CERT_ROLES: expected 'identity=role[,role]' entries separated by ';', got '${entry}'`,
      );
    }
    map.set(identity, [...new Set([...(map.get(identity) ?? []), ...roles])]);
  }
  return map;
}
