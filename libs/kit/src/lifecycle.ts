import type { CuriaServer } from './server.js';

/**
 * Wires SIGTERM/SIGINT to a graceful shutdown that exits 0; a second signal forces exit 1.
 * Returns a function that removes the handlers.
 */
export function exitOnSignals(
  server: CuriaServer,
  exit: (code: number) => void = (c) => process.exit(c),
): () => void {
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) {
      server.log.warn({ signal }, 'second signal: forcing exit');
      server.forceShutdown();
      exit(1);
      return;
    }
    signalled = true;
    server.log.info({ signal }, 'shutdown requested');
    server
      .shutdown()
      .then(() => exit(0))
      .catch((err: unknown) => {
        server.log.error({ err }, 'shutdown failed');
        exit(1);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  };
}
