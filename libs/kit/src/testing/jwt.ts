import { writeFileSync } from 'node:fs';

import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from 'jose';

/** A test token issuer: an ES256 key whose public half is written as a JWKS file. */
export interface TestIssuer {
  /** The JWKS file to give the server (`CURIA_AUTH_JWKS_FILE`). */
  readonly jwksFile: string;
  readonly issuer: string;
  readonly audience: string;
  /** Signs a token for `subject` with `roles`; `expiresIn` like `5m` or a negative age for an expired one. */
  token(
    subject: string,
    roles: readonly string[],
    options?: { expiresIn?: string; audience?: string },
  ): Promise<string>;
}

/** Creates a signing key and writes its JWKS to `jwksFile`. */
export async function createTestIssuer(
  jwksFile: string,
  issuer = 'https://issuer.test',
  audience = 'curia',
): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'test-1', alg: 'ES256', use: 'sig' };
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const sign = (
    key: CryptoKey,
    subject: string,
    roles: readonly string[],
    exp: string | number,
    aud: string,
  ) =>
    new SignJWT({ roles: [...roles] })
      .setProtectedHeader({ alg: 'ES256', kid: 'test-1' })
      .setSubject(subject)
      .setIssuer(issuer)
      .setAudience(aud)
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(key);
  return {
    jwksFile,
    issuer,
    audience,
    token: (subject, roles, options = {}) =>
      sign(
        privateKey,
        subject,
        roles,
        options.expiresIn === 'expired' ? Math.floor(Date.now() / 1000) - 3600 : (options.expiresIn ?? '5m'),
        options.audience ?? audience,
      ),
  };
}
