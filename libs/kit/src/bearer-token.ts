import { readFileSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';

import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

import { CuriaError } from '@curia/errors';

import { ConfigError } from './config.js';

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
  private fileCheckedAt = 0;
  private readonly remote: JWTVerifyGetKey | null;

  constructor(private readonly options: BearerTokenOptions) {
    if (!options.jwksFile && !options.jwksUrl) throw new ConfigError('a JWKS file or URL is required');
    this.remote = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : null;
    if (options.jwksFile) {
      // At startup, synchronously: a missing or malformed file stops the service with its name.
      const file = options.jwksFile;
      try {
        const st = statSync(file);
        this.fileKeys = { key: fileKey(st), get: jwkSet(readFileSync(file, 'utf8')) };
      } catch (err) {
        throw new ConfigError(
          `CURIA_AUTH_JWKS_FILE: cannot read a JWKS from ${file}: ${(err as Error).message}`,
        );
      }
      this.fileCheckedAt = Date.now();
    }
  }

  /** Verifies `token` (without the `Bearer ` prefix). */
  async verify(token: string): Promise<TokenIdentity> {
    const keys = this.remote ?? (await this.keysFromFile());
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        ...(this.options.issuer ? { issuer: this.options.issuer } : {}),
        ...(this.options.audience ? { audience: this.options.audience } : {}),
        clockTolerance: this.options.clockToleranceSec ?? 30,
      }));
    } catch (err) {
      // The key set could not be fetched (timeout, connection refused): not the caller's fault.
      if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
        throw new CuriaError(
          'UNAVAILABLE',
          'bearer token not checked: the token signing keys (CURIA_AUTH_JWKS_URL) could not be fetched; retry later',
          { cause: err, retryAfterMs: 1000 },
        );
      }
      throw new CuriaError('UNAUTHENTICATED', `bearer token refused: ${reason(err)}`);
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') {
      throw new CuriaError('UNAUTHENTICATED', 'bearer token refused: it has no subject (sub)');
    }
    return { subject: payload.sub, roles: rolesOf(payload[this.options.rolesClaim]) };
  }

  /**
   * The file's key set, re-read when its mtime or size changed (checked at most once a second,
   * asynchronously). A file caught mid-rewrite keeps the keys read last.
   */
  private async keysFromFile(): Promise<JWTVerifyGetKey> {
    const current = this.fileKeys!;
    if (Date.now() - this.fileCheckedAt < 1000) return current.get;
    this.fileCheckedAt = Date.now();
    const file = this.options.jwksFile!;
    try {
      const key = fileKey(await stat(file));
      if (key !== current.key) this.fileKeys = { key, get: jwkSet(await readFile(file, 'utf8')) };
    } catch {
      // Keep the previous keys: a rotation writes the file anew, and the next check reads it.
    }
    return this.fileKeys!.get;
  }
}

function fileKey(st: { mtimeMs: number; size: number }): string {
  return `${st.mtimeMs}:${st.size}`;
}

function jwkSet(text: string): JWTVerifyGetKey {
  return createLocalJWKSet(JSON.parse(text) as Parameters<typeof createLocalJWKSet>[0]);
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
