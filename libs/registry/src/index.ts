export {
  isConnectionError,
  PgHeadRegistry,
  redactDsn,
  type PgHeadRegistryOptions,
  type RegistryQuotas,
} from './pg-registry.js';
export { migrate, MIGRATIONS, MIGRATION_LOCK_KEY, type Migration } from './migrations.js';
