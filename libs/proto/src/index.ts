/**
 * `@curia/proto`: generated TypeScript (ts-proto, nice-grpc flavour) for Curia's public gRPC contract in
 * `proto/curia/<service>/v1`. One namespace per protobuf package; each holds the messages (interface + codec
 * object of the same name), enums, the generic `<Name>ServiceDefinition` (with `idempotencyLevel` on each
 * method's options) and the nice-grpc `<Name>ServiceImplementation` / `<Name>ServiceClient` types.
 *
 * Regenerate with `npm run proto:gen`; `npm run proto:check` fails when `src/gen` drifts from `proto/`.
 *
 * @packageDocumentation
 */
import { Buffer } from 'node:buffer';

import { EmbedServiceDefinition } from './gen/curia/embed/v1/embed.js';
import { GatewayServiceDefinition } from './gen/curia/gateway/v1/gateway.js';
import { HeadsServiceDefinition } from './gen/curia/heads/v1/heads.js';
import { PreprocessServiceDefinition } from './gen/curia/preprocess/v1/preprocess.js';
import { RegisterServiceDefinition } from './gen/curia/register/v1/register.js';
import { SegmentServiceDefinition } from './gen/curia/segment/v1/segment.js';
import { CURIA_DESCRIPTOR_SET_BASE64 } from './gen/descriptor-set.js';

export * from './bulk-encode.js';

/** `curia.common.v1`: tensors, geometry, volume input, feature requests, service/model/head info. */
export * as common from './gen/index.curia.common.v1.js';
/** `curia.preprocess.v1`: PreprocessService (volume -> model-ready slices). */
export * as preprocess from './gen/index.curia.preprocess.v1.js';
/** `curia.embed.v1`: EmbedService (slices -> backbone features). */
export * as embed from './gen/index.curia.embed.v1.js';
/** `curia.heads.v1`: HeadsService (features -> predictions; head training). */
export * as heads from './gen/index.curia.heads.v1.js';
/** `curia.segment.v1`: SegmentService (volume + prompts -> masks). */
export * as segment from './gen/index.curia.segment.v1.js';
/** `curia.register.v1`: RegisterService (fixed + moving volumes -> transform, field, warped images). */
export * as register from './gen/index.curia.register.v1.js';
/** `curia.gateway.v1`: GatewayService (one study -> every requested analysis). */
export * as gateway from './gen/index.curia.gateway.v1.js';

/** Fully-qualified names of every Curia service, e.g. for gRPC health checks and server reflection. */
export const CURIA_SERVICE_NAMES = [
  'curia.preprocess.v1.PreprocessService',
  'curia.embed.v1.EmbedService',
  'curia.heads.v1.HeadsService',
  'curia.segment.v1.SegmentService',
  'curia.register.v1.RegisterService',
  'curia.gateway.v1.GatewayService',
] as const;

/** A fully-qualified Curia service name. */
export type CuriaServiceName = (typeof CURIA_SERVICE_NAMES)[number];

/**
 * The generic (framework-agnostic) definition of every Curia service, keyed by fully-qualified name. Each method
 * entry carries `options.idempotencyLevel` ('NO_SIDE_EFFECTS' | 'IDEMPOTENT') when the proto declares one.
 */
export const SERVICE_DEFINITIONS = {
  'curia.preprocess.v1.PreprocessService': PreprocessServiceDefinition,
  'curia.embed.v1.EmbedService': EmbedServiceDefinition,
  'curia.heads.v1.HeadsService': HeadsServiceDefinition,
  'curia.segment.v1.SegmentService': SegmentServiceDefinition,
  'curia.register.v1.RegisterService': RegisterServiceDefinition,
  'curia.gateway.v1.GatewayService': GatewayServiceDefinition,
} as const satisfies Record<CuriaServiceName, { readonly fullName: string }>;

/**
 * The serialized `google.protobuf.FileDescriptorSet` of every Curia proto file plus its imports (with source
 * info, so reflection clients show the documentation). Feed it to a gRPC reflection service. Returns a fresh copy.
 */
export function descriptorSet(): Buffer {
  return Buffer.from(CURIA_DESCRIPTOR_SET_BASE64, 'base64');
}
