import type { common } from '@curia/proto';
import { isAbortError } from 'abort-controller-x';
import { ServerError, Status, type CallContext, type ServerMiddleware } from 'nice-grpc-common';

import { isCuriaError } from '@curia/errors';

import {
  DEFAULT_POLICY,
  loadPolicy,
  parseCertRoles,
  PUBLIC_ROLE,
  rolesFor,
  type MethodPolicy,
} from './auth-policy.js';
import { BearerTokenVerifier } from './bearer-token.js';
import { ConfigError, type ServiceEnv } from './config.js';
import type { Logger } from './logger.js';
import { toServerError } from './errors.js';
import { PEER_IDENTITY_METADATA_KEY } from './peer-identity.js';
import { studyRef } from './study-id.js';

/** Who made a call, as established by {@link callerAuthMiddleware}. */
export interface Caller {
  /** Token subject, certificate identity, or `anonymous` (local mode / public methods). */
  readonly id: string;
  readonly roles: readonly string[];
  /** How the identity was proven. */
  readonly via: 'jwt' | 'mtls' | 'none';
}

/** What a handler adds to its call's audit line. */
export interface AuditNotes {
  /** The model or head that answered, as `name@version` (several joined by `,`). */
  target?: string;
  /** {@link studyRef} of the call's study id (filled from the request when it carries one). */
  study?: string;
}

const ANONYMOUS: Caller = { id: 'anonymous', roles: [], via: 'none' };

/** Context extension added by {@link callerAuthMiddleware}. */
export interface CallerContext {
  caller: Caller;
  audit: AuditNotes;
}

/**
 * Who is calling, as recorded with what a call changes (a Fit's new version, a promotion): the
 * authenticated identity, or `anonymous` in local mode.
 */
export function callerOf(context: Partial<CallerContext>): string {
  return context.caller?.id ?? ANONYMOUS.id;
}

/** Records `target` (e.g. `organ@2`) on the call's audit line, when the call has one. */
export function noteAuditTarget(context: Partial<CallerContext>, target: string): void {
  if (!context.audit || !target) return;
  context.audit.target = context.audit.target ? `${context.audit.target},${target}` : target;
}

const QUIET = /^\/grpc\.(health|reflection)\./;
/** Messages inspected per call for a study id (starts come first; chunks after them never hold one). */
const PEEKED_MESSAGES = 4;

/** The pieces {@link callerAuthMiddleware} works with, built once per server from the environment. */
export interface CallerAuth {
  readonly mode: 'on' | 'off';
  readonly policy: MethodPolicy;
  readonly certRoles: ReadonlyMap<string, readonly string[]>;
  readonly bearer: BearerTokenVerifier | null;
}

/** Builds the auth settings from `CURIA_AUTH*`; throws a message naming the variable at startup. */
export function callerAuthFromEnv(env: ServiceEnv): CallerAuth {
  const bearer =
    env.CURIA_AUTH_JWKS_FILE || env.CURIA_AUTH_JWKS_URL
      ? new BearerTokenVerifier({
          ...(env.CURIA_AUTH_JWKS_FILE ? { jwksFile: env.CURIA_AUTH_JWKS_FILE } : {}),
          ...(env.CURIA_AUTH_JWKS_URL ? { jwksUrl: env.CURIA_AUTH_JWKS_URL } : {}),
          ...(env.CURIA_AUTH_JWT_ISSUER ? { issuer: env.CURIA_AUTH_JWT_ISSUER } : {}),
          ...(env.CURIA_AUTH_JWT_AUDIENCE ? { audience: env.CURIA_AUTH_JWT_AUDIENCE } : {}),
          rolesClaim: env.CURIA_AUTH_JWT_ROLES_CLAIM,
        })
      : null;
  const certRoles = parseCertRoles(env.CURIA_AUTH_CERT_ROLES);
  if (env.CURIA_AUTH === 'on') {
    if (!bearer && certRoles.size === 0) {
      throw new ConfigError(
        'CURIA_AUTH=on needs a way to identify callers: CURIA_AUTH_JWKS_FILE / CURIA_AUTH_JWKS_URL (bearer tokens) and/or CURIA_AUTH_CERT_ROLES (client certificates)',
      );
    }
    if (certRoles.size > 0 && !env.CURIA_TLS_CLIENT_CA_FILE) {
      throw new ConfigError(
        'CURIA_AUTH_CERT_ROLES is set but CURIA_TLS_CLIENT_CA_FILE is not: client certificates are never requested',
      );
    }
    if (bearer && !env.CURIA_AUTH_JWT_AUDIENCE) {
      throw new ConfigError(
        'CURIA_AUTH=on with bearer tokens needs CURIA_AUTH_JWT_AUDIENCE (tokens for other services must not be accepted)',
      );
    }
  }
  const policy = env.CURIA_AUTH_POLICY_FILE ? loadPolicy(env.CURIA_AUTH_POLICY_FILE) : DEFAULT_POLICY;
  return { mode: env.CURIA_AUTH, policy, certRoles, bearer };
}

/** What GetInfo reports about this server's security (`ServiceInfo.security`). */
export function securityInfo(env: ServiceEnv): common.SecurityInfo {
  const tls = Boolean(env.CURIA_TLS_CERT_FILE && env.CURIA_TLS_KEY_FILE);
  const mutualTls = tls && Boolean(env.CURIA_TLS_CLIENT_CA_FILE) && env.CURIA_TLS_CLIENT_CERT === 'require';
  const sources =
    env.CURIA_AUTH === 'on'
      ? [
          ...(env.CURIA_AUTH_CERT_ROLES ? ['mtls'] : []),
          ...(env.CURIA_AUTH_JWKS_FILE || env.CURIA_AUTH_JWKS_URL ? ['jwt'] : []),
        ]
      : [];
  const summary =
    env.CURIA_AUTH === 'on'
      ? `authentication on (${sources.join(' + ')}), per-method roles; ${tls ? (mutualTls ? 'mutual TLS' : 'TLS') : 'PLAINTEXT transport'}`
      : `local mode: no authentication${tls ? '' : ', plaintext'}; do not expose this port`;
  return {
    tls,
    mutualTls,
    upstreamTls: Boolean(env.CURIA_UPSTREAM_TLS_CA_FILE),
    auth: env.CURIA_AUTH,
    identitySources: sources,
    summary,
  };
}

/**
 * Establishes who is calling (bearer JWT, else the verified client certificate), enforces the
 * per-method policy (UNAUTHENTICATED without credentials, PERMISSION_DENIED without a role the
 * method admits), and writes one audit line per rpc at info level: caller, method, target
 * (`name@version`), status, duration and the keyed hash of the study id — never the raw id, a
 * path or a DICOM attribute. Health and reflection are open and not audited. With
 * `CURIA_AUTH=off` (local mode) nothing is checked but the audit line is still written.
 */
export function callerAuthMiddleware(auth: CallerAuth, log: Logger): ServerMiddleware<CallerContext> {
  return async function* callerAuth(call, context) {
    const method = call.method.path;
    const quiet = QUIET.test(method);
    const audit: AuditNotes = {};
    const started = performance.now();
    let caller = ANONYMOUS;
    let status = 'OK';
    let completed = false;
    try {
      caller =
        auth.mode === 'on'
          ? await identify(auth, context).catch((err: unknown) => {
              throw toServerError(err, context, (e) =>
                log.error({ err: e, method }, 'caller authentication failed unexpectedly'),
              );
            })
          : ANONYMOUS;
      if (auth.mode === 'on') authorize(auth.policy, caller, method);
      const request = call.requestStream
        ? peekStream(call.request as AsyncIterable<unknown>, audit)
        : (peekMessage(call.request, audit), call.request);
      const result = yield* call.next(request as typeof call.request, { ...context, caller, audit });
      completed = true;
      return result;
    } catch (err) {
      status = statusName(err, context);
      throw err;
    } finally {
      // A response stream the caller abandoned ends here without an error.
      if (!completed && status === 'OK') status = 'CANCELLED';
      if (!quiet) {
        const ms = Math.round((performance.now() - started) * 10) / 10;
        log.info(
          {
            audit: {
              caller: caller.id,
              via: caller.via,
              method,
              ...(audit.target ? { target: audit.target } : {}),
              status,
              ms,
              ...(audit.study ? { study: audit.study } : {}),
            },
          },
          'audit',
        );
      }
    }
  };
}

async function identify(auth: CallerAuth, context: CallContext): Promise<Caller> {
  const header = context.metadata.get('authorization');
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m?.[1])
      throw new ServerError(Status.UNAUTHENTICATED, "the authorization header must be 'Bearer <JWT>'");
    if (!auth.bearer) {
      throw new ServerError(
        Status.UNAUTHENTICATED,
        'this server does not accept bearer tokens; present a client certificate',
      );
    }
    const token = await auth.bearer.verify(m[1]);
    return { id: token.subject, roles: token.roles, via: 'jwt' };
  }
  const ids = (context.metadata.get(PEER_IDENTITY_METADATA_KEY) ?? '').split(',').filter(Boolean);
  if (ids.length > 0) {
    const roles = [...new Set(ids.flatMap((id) => auth.certRoles.get(id) ?? []))];
    const id = ids.find((i) => auth.certRoles.has(i)) ?? ids[0]!;
    return { id, roles, via: 'mtls' };
  }
  return ANONYMOUS;
}

function authorize(policy: MethodPolicy, caller: Caller, method: string): void {
  const allowed = rolesFor(policy, method);
  if (allowed.includes(PUBLIC_ROLE)) return;
  if (caller.via === 'none') {
    throw new ServerError(
      Status.UNAUTHENTICATED,
      `${method} needs credentials: a client certificate (mTLS) or an 'authorization: Bearer <JWT>' header`,
    );
  }
  if (!caller.roles.some((r) => allowed.includes(r))) {
    throw new ServerError(
      Status.PERMISSION_DENIED,
      `${caller.id} may not call ${method}: it needs one of the roles [${allowed.join(', ')}], it has [${caller.roles.join(', ')}]`,
    );
  }
}

async function* peekStream(source: AsyncIterable<unknown>, audit: AuditNotes): AsyncGenerator<unknown> {
  let n = 0;
  for await (const message of source) {
    if (n++ < PEEKED_MESSAGES && !audit.study) peekMessage(message, audit);
    yield message;
  }
}

function peekMessage(message: unknown, audit: AuditNotes): void {
  const id = findStudyId(message, 0);
  if (id) audit.study = studyRef(id);
}

/** The first non-empty `studyId` field in a decoded message, at most 4 levels deep. */
function findStudyId(value: unknown, depth: number): string | undefined {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || Array.isArray(value))
    return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.studyId === 'string' && record.studyId) return record.studyId;
  if (depth >= 4) return undefined;
  for (const v of Object.values(record)) {
    const found = findStudyId(v, depth + 1);
    if (found) return found;
  }
  return undefined;
}

function statusName(err: unknown, context: CallContext): string {
  if (err instanceof ServerError) return Status[err.code];
  if (isCuriaError(err)) return err.code;
  if (isAbortError(err) || context.signal.aborted) return 'CANCELLED';
  return 'INTERNAL';
}
