import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A certificate and its key, as PEM files. */
export interface IssuedCert {
  readonly cert: string;
  readonly key: string;
}

/** A throwaway certificate authority for tests (openssl, P-256 keys, valid one day). */
export interface TestPki {
  /** PEM file of the CA certificate. */
  readonly ca: string;
  /**
   * Issues a certificate with subject CN `name`, SANs `DNS:localhost`, `IP:127.0.0.1` and
   * `dnsNames`, usable as server and client certificate; files `<dir>/<name>.pem|.key`.
   */
  issue(name: string, dnsNames?: readonly string[]): IssuedCert;
}

/** Creates a CA named `caName` in `dir` (files `<caName>.pem|.key`). */
export function createTestPki(dir: string, caName = 'curia-test-ca'): TestPki {
  const p = (f: string) => join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...newKey,
    '-days',
    '1',
    '-subj',
    `/CN=${caName}`,
    '-keyout',
    p(`${caName}.key`),
    '-out',
    p(`${caName}.pem`),
  );
  return {
    ca: p(`${caName}.pem`),
    issue(name, dnsNames = []) {
      const sans = ['DNS:localhost', 'IP:127.0.0.1', ...dnsNames.map((d) => `DNS:${d}`)].join(',');
      writeFileSync(
        p(`${name}.ext`),
        `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n`,
      );
      ssl('req', ...newKey, '-subj', `/CN=${name}`, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`));
      ssl(
        'x509',
        '-req',
        '-in',
        p(`${name}.csr`),
        '-CA',
        p(`${caName}.pem`),
        '-CAkey',
        p(`${caName}.key`),
        '-CAcreateserial',
        '-days',
        '1',
        '-extfile',
        p(`${name}.ext`),
        '-out',
        p(`${name}.pem`),
      );
      return { cert: p(`${name}.pem`), key: p(`${name}.key`) };
    },
  };
}
