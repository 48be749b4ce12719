import { ANALYSIS_SERVICES, SERVICE_CATALOG, type ServiceCatalogEntry } from '@curia/kit';

/** One Curia service as the local launcher knows it: an entry of `@curia/kit`'s service catalogue. */
export type ServiceEntry = ServiceCatalogEntry;

/** Every service, callees before callers: the gateway starts last (`@curia/kit`'s `SERVICE_CATALOG`). */
export const SERVICES: readonly ServiceEntry[] = SERVICE_CATALOG;

export { ANALYSIS_SERVICES };
