import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Registry } from 'prom-client';

/** Readiness as the HTTP endpoints see it. */
export interface HttpProbeState {
  /** True while the process is alive and not stuck (always, until it exits). */
  live(): boolean;
  /** True when the gRPC health status of the server is SERVING. */
  ready(): boolean;
}

/**
 * The per-service HTTP listener: `/metrics` (Prometheus text format), `/livez` and `/readyz`
 * (mirrors of gRPC health, for tools that cannot speak gRPC).
 */
export class MetricsHttpServer {
  private readonly server: Server;

  constructor(
    private readonly registry: Registry,
    private readonly probes: HttpProbeState,
  ) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/metrics') {
        this.registry
          .metrics()
          .then((body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body))
          .catch(() => res.writeHead(500).end('metrics collection failed\n'));
        return;
      }
      if (path === '/livez' || path === '/readyz') {
        const ok = path === '/livez' ? this.probes.live() : this.probes.ready();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' }).end(ok ? 'ok\n' : 'not ready\n');
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /livez, /readyz\n');
    });
    this.server.keepAliveTimeout = 65_000;
  }

  /** Starts listening; resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops accepting connections and closes idle ones. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }
}
