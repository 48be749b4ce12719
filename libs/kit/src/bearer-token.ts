import { statSync, readFileSync } from 'node:fs';

import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

import { CuriaError } from '@curia/errors';

/** Options of {@link BearerTokenVerifier}. */
export interface BearerTokenOptions {
  /** JWKS file (re-read when its mtime or size changes). */
  readonly jwksFile?: string;
  /** JWKS URL (fetched, cached, refetched on an unknown `kid`). */
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** Claim holding the roles: a list of strings or one space-separated string. */
  readonly rolesClaim: string;
  /** Allowed clock skew on exp/nbf, seconds (default 30). */
  readonly clockToleranceSec?: number;
}

/** A verified bearer token's subject and roles. */
export interface TokenIdentity {
  readonly subject: string;
  readonly roles: readonly string[];
}

/**
 * Verifies `authorization: Bearer <JWT>` tokens: signature against a JWKS (file or URL),
 * issuer, audience, expiry and not-before. Failures are UNAUTHENTICATED with the reason a
 * caller can act on (expired, wrong audience, unknown key…) and never echo the token.
 */
export class BearerTokenVerifier {
  private fileKeys: { key: string; get: JWTVerifyGetKey } | null = null;
  private readonly remote: JWTVerifyGetKey | null;

  constructor(private readonly options: BearerTokenOptions) {
    if (!options.jwksFile && !options.jwksUrl) throw new Error('a JWKS file or URL is required');
    this.remote = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : null;
    if (options.jwksFile) this.keysFromFile(); // fail at startup on a bad file
  }

  /** Verifies `token` (without the `Bearer ` prefix). */
  async verify(token: string): Promise<TokenIdentity> {
    let payload: JWTPayload;
    try {
      const keys = this.remote ?? this.keysFromFile();
      ({ payload } = await jwtVerify(token, keys, {
        ...(this.options.issuer ? { issuer: this.options.issuer } : {}),
        ...(this.options.audience ? { audience: this.options.audience } : {}),
        clockTolerance: this.options.clockToleranceSec ?? 30,
      }));
    } catch (err) {
      throw new CuriaError('UNAUTHENTICATED', `bearer token refused: ${reason(err)}`);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new CuriaError('UNAUTHENTICATED', 'bearer token refused: it has no subject (sub)');
    }
    return { subject: payload.sub, roles: rolesOf(payload[this.options.rolesClaim]) };
  }

  private keysFromFile(): JWTVerifyGetKey {
    const file = this.options.jwksFile!;
    const st = statSync(file);
    const key = `${st.mtimeMs}:${st.size}`;
    if (this.fileKeys?.key !== key) {
      const jwks = JSON.parse(readFileSync(file, 'utf8')) as Parameters<typeof createLocalJWKSet>[0];
      this.fileKeys = { key, get: createLocalJWKSet(jwks) };
    }
    return this.fileKeys.get;
  }
}

function rolesOf(claim: unknown): string[] {
  if (typeof claim === 'string') return claim.split(/\s+/).filter(Boolean);
  if (Array.isArray(claim)) return claim.filter((r): r is string => typeof r === 'string');
  return [];
}

function reason(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'it has expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    return `claim '${err.claim}' is not what this server expects (${err.reason})`;
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'its signature does not verify';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no configured key matches its key id';
  if (err instanceof joseErrors.JWTInvalid || err instanceof joseErrors.JWSInvalid)
    return 'it is not a well-formed JWT';
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return 'its algorithm is not accepted';
  }
  return 'it could not be verified';
}
