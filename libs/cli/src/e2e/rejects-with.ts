import { expect } from 'vitest';

import { ClientError, Status } from '@curia/client';

/** Asserts that `p` fails with a gRPC `code` whose details match `re`. */
export async function rejectsWith(p: Promise<unknown>, code: Status, re: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, `expected ${Status[code]}`).toBeInstanceOf(ClientError);
  expect(`${Status[(err as ClientError).code]}: ${(err as ClientError).details}`).toMatch(
    new RegExp(`^${Status[code]}: `),
  );
  expect((err as ClientError).details).toMatch(re);
}
