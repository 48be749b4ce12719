// Telemetry starts before any application module is loaded.
import { startTelemetry } from '@curia/kit/telemetry';

startTelemetry('curia-embed');
const { main } = await import('./service.js');
await main();
