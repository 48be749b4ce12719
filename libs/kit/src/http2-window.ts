import http2 from 'node:http2';

/** HTTP/2 server factories grpc-js calls (it `require`s the module, so patching its exports works). */
type Factory = typeof http2.createServer;

let windowBytes = 0;

/**
 * Raises the HTTP/2 receive window of every gRPC server this process creates afterwards: the
 * per-stream initial window (SETTINGS_INITIAL_WINDOW_SIZE) and the connection window.
 *
 * Why: grpc-js honours `grpc-node.flow_control_window` on clients only (grpc/grpc-node#3058 is
 * the open upstream fix), so a server's window stays at 64 KiB. A 1 MiB slice sent to such a
 * server then needs ~16 WINDOW_UPDATE round trips, and none are sent while the server's event
 * loop is busy — which stalls uploads into Embed between batches. Idempotent; the largest
 * requested value wins.
 */
export function raiseServerFlowControlWindow(bytes: number): void {
  if (bytes <= 65_535) return;
  const first = windowBytes === 0;
  windowBytes = Math.max(windowBytes, Math.min(bytes, 2 ** 31 - 1));
  if (!first) return;
  const wrap = <F extends Factory>(create: F): F =>
    ((options: http2.ServerOptions = {}, ...rest: unknown[]) => {
      const server = (create as unknown as (o: http2.ServerOptions, ...r: unknown[]) => http2.Http2Server)(
        { ...options, settings: { ...options.settings, initialWindowSize: windowBytes } },
        ...rest,
      );
      server.on('session', (session: http2.ServerHttp2Session) => session.setLocalWindowSize(windowBytes));
      return server;
    }) as unknown as F;
  http2.createServer = wrap(http2.createServer);
  http2.createSecureServer = wrap(
    http2.createSecureServer as unknown as Factory,
  ) as unknown as typeof http2.createSecureServer;
}
