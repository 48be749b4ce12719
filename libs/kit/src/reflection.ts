import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorSetSchema,
  type DescriptorProtoSchema,
  type FieldDescriptorProtoSchema,
  type FileDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';
import type { Server } from 'nice-grpc';
import { ServerReflection, ServerReflectionService } from 'nice-grpc-server-reflection';

/** `grpc.health.v1.Health`, served by every CuriaServer. */
export const HEALTH_SERVICE = 'grpc.health.v1.Health';
/** The reflection services a CuriaServer with a descriptor set serves: v1, and v1alpha for older clients. */
export const REFLECTION_SERVICES = [
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
] as const;

type FileInit = MessageInitShape<typeof FileDescriptorProtoSchema>;
type MessageInit = MessageInitShape<typeof DescriptorProtoSchema>;
type FieldInit = MessageInitShape<typeof FieldDescriptorProtoSchema>;

const { STRING, INT32, BYTES, MESSAGE, ENUM } = FieldDescriptorProto_Type;

function field(
  name: string,
  number: number,
  type: FieldDescriptorProto_Type,
  more: { typeName?: string; repeated?: boolean; oneofIndex?: number } = {},
): FieldInit {
  return {
    name,
    number,
    type,
    label: more.repeated ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
    jsonName: name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    ...(more.typeName ? { typeName: more.typeName } : {}),
    ...(more.oneofIndex !== undefined ? { oneofIndex: more.oneofIndex } : {}),
  };
}

/** The messages and service of grpc/health/v1/health.proto that nice-grpc-server-health serves (Check, Watch). */
function healthFile(): FileInit {
  const pkg = '.grpc.health.v1';
  return {
    name: 'grpc/health/v1/health.proto',
    package: 'grpc.health.v1',
    syntax: 'proto3',
    messageType: [
      { name: 'HealthCheckRequest', field: [field('service', 1, STRING)] },
      {
        name: 'HealthCheckResponse',
        field: [field('status', 1, ENUM, { typeName: `${pkg}.HealthCheckResponse.ServingStatus` })],
        enumType: [
          {
            name: 'ServingStatus',
            value: ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'].map((name, number) => ({
              name,
              number,
            })),
          },
        ],
      },
    ],
    service: [
      {
        name: 'Health',
        method: [
          { name: 'Check', inputType: `${pkg}.HealthCheckRequest`, outputType: `${pkg}.HealthCheckResponse` },
          {
            name: 'Watch',
            inputType: `${pkg}.HealthCheckRequest`,
            outputType: `${pkg}.HealthCheckResponse`,
            serverStreaming: true,
          },
        ],
      },
    ],
  };
}

/** grpc/reflection/<version>/reflection.proto: v1 and v1alpha differ only in the package. */
function reflectionFile(version: 'v1' | 'v1alpha'): FileInit {
  const pkg = `.grpc.reflection.${version}`;
  const message = (name: string, ...fields: FieldInit[]): MessageInit => ({ name, field: fields });
  return {
    name: `grpc/reflection/${version}/reflection.proto`,
    package: `grpc.reflection.${version}`,
    syntax: 'proto3',
    messageType: [
      {
        name: 'ServerReflectionRequest',
        oneofDecl: [{ name: 'message_request' }],
        field: [
          field('host', 1, STRING),
          field('file_by_filename', 3, STRING, { oneofIndex: 0 }),
          field('file_containing_symbol', 4, STRING, { oneofIndex: 0 }),
          field('file_containing_extension', 5, MESSAGE, {
            typeName: `${pkg}.ExtensionRequest`,
            oneofIndex: 0,
          }),
          field('all_extension_numbers_of_type', 6, STRING, { oneofIndex: 0 }),
          field('list_services', 7, STRING, { oneofIndex: 0 }),
        ],
      },
      message('ExtensionRequest', field('containing_type', 1, STRING), field('extension_number', 2, INT32)),
      {
        name: 'ServerReflectionResponse',
        oneofDecl: [{ name: 'message_response' }],
        field: [
          field('valid_host', 1, STRING),
          field('original_request', 2, MESSAGE, { typeName: `${pkg}.ServerReflectionRequest` }),
          field('file_descriptor_response', 4, MESSAGE, {
            typeName: `${pkg}.FileDescriptorResponse`,
            oneofIndex: 0,
          }),
          field('all_extension_numbers_response', 5, MESSAGE, {
            typeName: `${pkg}.ExtensionNumberResponse`,
            oneofIndex: 0,
          }),
          field('list_services_response', 6, MESSAGE, {
            typeName: `${pkg}.ListServiceResponse`,
            oneofIndex: 0,
          }),
          field('error_response', 7, MESSAGE, { typeName: `${pkg}.ErrorResponse`, oneofIndex: 0 }),
        ],
      },
      message('FileDescriptorResponse', field('file_descriptor_proto', 1, BYTES, { repeated: true })),
      message(
        'ExtensionNumberResponse',
        field('base_type_name', 1, STRING),
        field('extension_number', 2, INT32, { repeated: true }),
      ),
      message(
        'ListServiceResponse',
        field('service', 1, MESSAGE, { typeName: `${pkg}.ServiceResponse`, repeated: true }),
      ),
      message('ServiceResponse', field('name', 1, STRING)),
      message('ErrorResponse', field('error_code', 1, INT32), field('error_message', 2, STRING)),
    ],
    service: [
      {
        name: 'ServerReflection',
        method: [
          {
            name: 'ServerReflectionInfo',
            inputType: `${pkg}.ServerReflectionRequest`,
            outputType: `${pkg}.ServerReflectionResponse`,
            clientStreaming: true,
            serverStreaming: true,
          },
        ],
      },
    ],
  };
}

/**
 * Serialized FileDescriptorSet of the gRPC infrastructure services the kit serves itself:
 * `grpc.health.v1.Health` (Check, Watch) and `grpc.reflection.{v1,v1alpha}.ServerReflection`.
 */
export function infrastructureDescriptorSet(): Uint8Array {
  return toBinary(
    FileDescriptorSetSchema,
    create(FileDescriptorSetSchema, {
      file: [healthFile(), reflectionFile('v1'), reflectionFile('v1alpha')],
    }),
  );
}

/** The v1alpha reflection service: the v1 definition (same messages) under the v1alpha path. */
export const V1ALPHA_REFLECTION_SERVICE = {
  serverReflectionInfo: {
    ...ServerReflectionService.serverReflectionInfo,
    path: '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
  },
} as unknown as typeof ServerReflectionService;

/**
 * Serves server reflection (v1 and v1alpha) on `server`, describing `services` and the health
 * and reflection services themselves, as grpc-go and grpc-java servers do, so `grpcurl` can call
 * `grpc.health.v1.Health/Check` with no .proto files. `descriptorSet` holds the application's
 * files; the kit adds its own.
 */
export function addReflection<C extends object>(
  server: Server<C>,
  descriptorSet: Uint8Array,
  services: readonly string[],
): void {
  // A FileDescriptorSet is one repeated field, so two serialized sets concatenate into one.
  const kit = infrastructureDescriptorSet();
  const all = new Uint8Array(kit.length + descriptorSet.length);
  all.set(kit);
  all.set(descriptorSet, kit.length);
  const impl = ServerReflection(all, [...services, HEALTH_SERVICE, ...REFLECTION_SERVICES]);
  server.add(ServerReflectionService, impl);
  server.add(V1ALPHA_REFLECTION_SERVICE, impl);
}
