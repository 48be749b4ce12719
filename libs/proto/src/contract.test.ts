import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import type { DescService } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema, MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';

import { common, CURIA_SERVICE_NAMES, descriptorSet, embed, SERVICE_DEFINITIONS } from './index.js';

function loadRegistry() {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptorSet()));
}

function curiaServices(): DescService[] {
  const services: DescService[] = [];
  for (const file of loadRegistry().files) {
    if (file.proto.package.startsWith('curia.')) services.push(...file.services);
  }
  return services;
}

describe('Tensor wire format', () => {
  it('encodes to the hand-computed protobuf bytes and decodes back', () => {
    const values = new Float32Array([1.5, -2]);
    const data = new Uint8Array(values.buffer);
    const tensor: common.Tensor = { dtype: common.DType.F32, shape: [1, 2], data };

    const bytes = common.Tensor.encode(tensor).finish();
    // field 1 varint (dtype=1), field 2 packed int64 [1, 2], field 3 bytes (8 bytes of little-endian floats).
    const expected = new Uint8Array([0x08, 0x01, 0x12, 0x02, 0x01, 0x02, 0x1a, 0x08, ...data]);
    expect(Array.from(bytes)).toEqual(Array.from(expected));

    const decoded = common.Tensor.decode(bytes);
    expect(decoded.dtype).toBe(common.DType.F32);
    expect(decoded.shape).toEqual([1, 2]);
    const copy = decoded.data.slice();
    expect(Array.from(new Float32Array(copy.buffer, 0, 2))).toEqual([1.5, -2]);
  });

  it('round-trips a full 512x512 F16 slice inside an Embed request oneof', () => {
    const data = new Uint8Array(2 * 512 * 512);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    const request: embed.EmbedRequest = {
      msg: {
        $case: 'slice',
        value: { sliceId: 7, pixels: { dtype: common.DType.F16, shape: [1, 512, 512], data } },
      },
    };
    const decoded = embed.EmbedRequest.decode(embed.EmbedRequest.encode(request).finish());
    expect(decoded.msg?.$case).toBe('slice');
    if (decoded.msg?.$case !== 'slice') throw new Error('expected a slice message');
    expect(decoded.msg.value.sliceId).toBe(7);
    expect(decoded.msg.value.pixels?.shape).toEqual([1, 512, 512]);
    expect(Buffer.compare(Buffer.from(decoded.msg.value.pixels?.data ?? []), Buffer.from(data))).toBe(0);
  });
});

describe('descriptor set', () => {
  it('decodes with its imports and holds exactly the listed Curia services', () => {
    const names = curiaServices().map((s) => s.typeName);
    expect(names.sort()).toEqual([...CURIA_SERVICE_NAMES].sort());
    for (const name of names) expect(name).toMatch(/^curia\.[a-z]+\.v1\.[A-Z][A-Za-z]*Service$/);
    expect(loadRegistry().getFile('google/protobuf/timestamp.proto')).toBeDefined();
  });

  it('declares GetInfo as NO_SIDE_EFFECTS on every service', () => {
    for (const service of curiaServices()) {
      const getInfo = service.methods.find((m) => m.name === 'GetInfo');
      expect(getInfo, `${service.typeName}.GetInfo`).toBeDefined();
      expect(getInfo?.idempotency, service.typeName).toBe(MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
    }
  });

  it('leaves Fit without an idempotency level (each call creates a head version)', () => {
    const heads = curiaServices().find((s) => s.typeName === 'curia.heads.v1.HeadsService');
    const fit = heads?.methods.find((m) => m.name === 'Fit');
    expect(fit?.idempotency).toBe(MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN);
  });
});

describe('generated service definitions', () => {
  it('expose GetInfo as a unary NO_SIDE_EFFECTS method on every service', () => {
    for (const name of CURIA_SERVICE_NAMES) {
      const getInfo = SERVICE_DEFINITIONS[name].methods.getInfo;
      expect(getInfo.name, name).toBe('GetInfo');
      expect(getInfo.options.idempotencyLevel, name).toBe('NO_SIDE_EFFECTS');
      expect(getInfo.requestStream || getInfo.responseStream, name).toBe(false);
    }
  });

  it('match the descriptor set method by method, including idempotency levels', () => {
    const levelName: Record<number, string | undefined> = {
      [MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS]: 'NO_SIDE_EFFECTS',
      [MethodOptions_IdempotencyLevel.IDEMPOTENT]: 'IDEMPOTENT',
    };
    for (const service of curiaServices()) {
      const definition = SERVICE_DEFINITIONS[service.typeName as keyof typeof SERVICE_DEFINITIONS];
      expect(definition.fullName).toBe(service.typeName);
      const methods = Object.values(definition.methods) as {
        name: string;
        requestStream: boolean;
        responseStream: boolean;
        options: { idempotencyLevel?: string };
      }[];
      expect(methods.map((m) => m.name).sort()).toEqual(service.methods.map((m) => m.name).sort());
      for (const method of service.methods) {
        const generated = methods.find((m) => m.name === method.name);
        expect(generated?.options.idempotencyLevel, `${service.typeName}.${method.name}`).toBe(
          levelName[method.idempotency],
        );
        expect(generated?.requestStream).toBe(
          method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
        );
        expect(generated?.responseStream).toBe(
          method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
        );
      }
    }
  });
});
