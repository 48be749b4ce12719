export {
  isConnectionError,
  PgHeadRegistry,
  redactDsn,
  registryQuotas,
  type PgHeadRegistryOptions,
  type RegistryQuotas,
} from './pg-registry.js';
export { migrate, MIGRATIONS, MIGRATION_LOCK_KEY, type Migration } from './migrations.js';
export {
  checkWritable,
  openHeadRegistry,
  setupOrFatal,
  type OpenedHeadRegistry,
  type OpenHeadRegistryOptions,
} from './open.js';
