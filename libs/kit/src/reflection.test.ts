import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { createClient, type Channel } from 'nice-grpc';
import {
  HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthDefinition,
} from 'nice-grpc-server-health/lib/proto/grpc/health/v1/health.js';
import { ServerReflectionService } from 'nice-grpc-server-reflection';
import reflectionPb from 'nice-grpc-server-reflection/lib/proto/grpc/reflection/v1/reflection_pb.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createCuriaChannel } from '@curia/client';
import { descriptorSet } from '@curia/proto';

import { infrastructureDescriptorSet, V1ALPHA_REFLECTION_SERVICE } from './reflection.js';
import type { CuriaServer } from './server.js';
import { startEchoServer } from './testing/echo-server.js';

const { ServerReflectionRequest } = reflectionPb;

let server: CuriaServer;
let address: string;
let channel: Channel;

beforeAll(async () => {
  const started = await startEchoServer({}, { descriptorSet: descriptorSet() });
  server = started.server;
  address = `127.0.0.1:${started.ports.grpcPort}`;
  channel = createCuriaChannel(address);
});

afterAll(async () => {
  channel.close();
  await server.shutdown();
});

/** One request on a reflection stream (v1 unless `definition` says otherwise). */
async function reflect(
  request: InstanceType<typeof ServerReflectionRequest>,
  definition = ServerReflectionService,
): Promise<InstanceType<typeof reflectionPb.ServerReflectionResponse>> {
  const client = createClient(definition, channel);
  for await (const response of client.serverReflectionInfo(once(request))) return response;
  throw new Error('reflection stream ended without a response');
}

// eslint-disable-next-line @typescript-eslint/require-await -- the client takes an AsyncIterable
async function* once<T>(value: T): AsyncIterable<T> {
  yield value;
}

async function listServices(definition = ServerReflectionService): Promise<string[]> {
  const res = await reflect(new ServerReflectionRequest().setListServices(''), definition);
  return (res.getListServicesResponse()?.getServiceList() ?? []).map((s) => s.getName());
}

async function fileContaining(symbol: string) {
  const res = await reflect(new ServerReflectionRequest().setFileContainingSymbol(symbol));
  const files = res.getFileDescriptorResponse()?.getFileDescriptorProtoList_asU8() ?? [];
  expect(res.getErrorResponse()?.getErrorMessage()).toBeUndefined();
  expect(files).toHaveLength(1);
  return fromBinary(FileDescriptorProtoSchema, files[0]!);
}

const SERVICES = [
  'curia.test.v1.EchoService',
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
];

describe('server reflection', () => {
  it('lists every service the server exposes, over v1 and v1alpha', async () => {
    expect((await listServices()).sort()).toEqual(SERVICES);
    expect((await listServices(V1ALPHA_REFLECTION_SERVICE)).sort()).toEqual(SERVICES);
  });

  it('describes health and reflection as they are served', async () => {
    const health = await fileContaining('grpc.health.v1.Health');
    const methods = health.service[0]?.method.map((m) => [m.name, m.clientStreaming, m.serverStreaming]);
    expect(methods).toEqual(
      Object.values(HealthDefinition.methods).map((m) => [m.name, m.requestStream, m.responseStream]),
    );
    for (const version of ['v1', 'v1alpha']) {
      const file = await fileContaining(`grpc.reflection.${version}.ServerReflection`);
      expect(file.service[0]?.method[0]).toMatchObject({
        name: 'ServerReflectionInfo',
        clientStreaming: true,
        serverStreaming: true,
      });
    }
    // The application's own files are still found next to the kit's.
    expect((await fileContaining('curia.embed.v1.EmbedService')).package).toBe('curia.embed.v1');
  });

  it('describes messages that decode what the server sends', () => {
    const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, infrastructureDescriptorSet()));
    const response = registry.getMessage('grpc.health.v1.HealthCheckResponse');
    expect(response).toBeDefined();
    const wire = HealthCheckResponse.encode({
      status: HealthCheckResponse_ServingStatus.NOT_SERVING,
    }).finish();
    expect(fromBinary(response!, wire)).toMatchObject({ status: 2 });
  });

  it('lets grpcurl call grpc.health.v1.Health/Check and the reflection service with no .proto files', async () => {
    const grpcurl = findGrpcurl();
    if (!grpcurl) return;
    const run = async (...args: string[]) =>
      (await promisify(execFile)(grpcurl, ['-plaintext', ...args], { encoding: 'utf8' })).stdout;
    expect(JSON.parse(await run(address, 'grpc.health.v1.Health/Check'))).toEqual({ status: 'SERVING' });
    const echo = '{"service":"curia.test.v1.EchoService"}';
    expect(JSON.parse(await run('-d', echo, address, 'grpc.health.v1.Health/Check'))).toEqual({
      status: 'SERVING',
    });
    const listed = await run(
      '-d',
      '{"list_services":""}',
      address,
      'grpc.reflection.v1.ServerReflection/ServerReflectionInfo',
    );
    expect(listed).toContain('"name": "grpc.health.v1.Health"');
    expect((await run(address, 'list')).trim().split('\n').sort()).toEqual(SERVICES);
  });
});

/** grpcurl from $GRPCURL, ~/go/bin or PATH; required under CI=true, else the grpcurl test skips. */
function findGrpcurl(): string | null {
  const dirs = [join(homedir(), 'go', 'bin'), ...(process.env.PATH ?? '').split(':')];
  const found = process.env.GRPCURL ?? dirs.map((d) => join(d, 'grpcurl')).find((p) => existsSync(p));
  if (found) return found;
  if (process.env.CI === 'true') throw new Error('grpcurl is required under CI=true (.ci/run installs it)');
  console.warn('SKIP grpcurl check: grpcurl not found (.ci/run installs v1.9.3)');
  return null;
}
