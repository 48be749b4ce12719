import { ClientError, common, heads, segment, Status } from '@curia/client';
import { CuriaError } from '@curia/errors';
import { CuriaServer, loadConfig, serviceEnvSchema } from '@curia/kit';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import { headPromoteAction, registerHead } from './head.js';

/**
 * A server with fake HeadsService and SegmentService PromoteHead rpcs over one alias table, so the
 * command is checked against the wire (name, version, previous version, NOT_FOUND) without a cluster.
 */
async function startFakePromote() {
  const server = new CuriaServer({
    name: 'heads',
    env: loadConfig(serviceEnvSchema, { CURIA_GRPC_HOST: '127.0.0.1', CURIA_LOG_LEVEL: 'silent' }),
  });
  const versions = new Map([['organ', ['1', '2']]]);
  const alias = new Map([['organ', '1']]);
  const calls: string[] = [];
  const promote = (service: string, name: string, version: string) => {
    calls.push(`${service} ${name}@${version}`);
    const known = versions.get(name);
    if (!known?.includes(version)) {
      throw new CuriaError(
        'NOT_FOUND',
        `head '${name}' has no version '${version}' (versions: ${known?.join(', ')})`,
      );
    }
    const previous = alias.get(name) ?? '';
    alias.set(name, version);
    return { info: common.HeadInfo.fromPartial({ name, version, promoted: true }), previous };
  };
  const unimplemented = () => Promise.reject(new CuriaError('UNIMPLEMENTED', 'fake'));
  server.add(heads.HeadsServiceDefinition, {
    getInfo: unimplemented,
    listHeads: unimplemented,
    getHead: unimplemented,
    predict: unimplemented,
    fit: unimplemented,
    promoteHead: (req) => {
      const { info, previous } = promote('heads', req.name, req.version);
      return Promise.resolve({ head: info, previousVersion: previous });
    },
  });
  server.add(segment.SegmentServiceDefinition, {
    getInfo: unimplemented,
    // eslint-disable-next-line require-yield -- never called here
    segment: async function* () {
      await unimplemented();
    },
    // eslint-disable-next-line require-yield -- never called here
    segmentFeatures: async function* () {
      await unimplemented();
    },
    fit: unimplemented,
    promoteHead: (req) => {
      const { info, previous } = promote('segment', req.name, req.version);
      return Promise.resolve({ head: segment.SegmentHead.fromPartial({ info }), previousVersion: previous });
    },
  });
  const ports = await server.start();
  server.setServing(true);
  return { target: `127.0.0.1:${ports.grpcPort}`, calls, close: () => server.shutdown() };
}

describe('curia head promote (also `curia heads promote`)', () => {
  let fake: Awaited<ReturnType<typeof startFakePromote>>;
  beforeAll(async () => {
    fake = await startFakePromote();
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('promotes through HeadsService.PromoteHead, then SegmentService.PromoteHead with --segment', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const program = new Command().exitOverride();
      registerHead(program);
      await program.parseAsync(['heads', 'promote', 'organ', '2', '--target', fake.target], { from: 'user' });
      await program.parseAsync(
        ['head', 'promote', 'organ', '1', '--segment', '--json', '--target', fake.target],
        {
          from: 'user',
        },
      );
      const printed = out.mock.calls.map((c) => String(c[0]));
      expect(printed[0]).toBe("promoted organ@2 (was organ@1): 'organ' now resolves to it\n");
      expect(JSON.parse(printed[1]!)).toEqual({ name: 'organ', version: '1', previous: '2' });
    } finally {
      out.mockRestore();
    }
    expect(fake.calls).toEqual(['heads organ@2', 'segment organ@1']);
  });

  it('reports an unknown version as the server says it (NOT_FOUND listing the versions)', async () => {
    const err = await headPromoteAction('organ', '9', { target: fake.target }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe(Status.NOT_FOUND);
    expect((err as ClientError).details).toMatch(/versions: 1, 2/);
  });
});
