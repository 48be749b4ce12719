// Telemetry starts before any application module is loaded.
import { startTelemetry } from '@curia/kit/telemetry';

startTelemetry('curia-segment');
const { main } = await import('./service.js');
await main();
