import http2 from 'node:http2';

import { afterEach, describe, expect, it } from 'vitest';

import type { CuriaServer } from './server.js';
import { startEchoServer } from './testing/echo-server.js';

const servers: CuriaServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.shutdown()));
});

describe('server HTTP/2 flow-control window', () => {
  it('advertises CURIA_FLOW_CONTROL_WINDOW_BYTES per stream and opens the connection window to it', async () => {
    const { server, ports } = await startEchoServer({
      CURIA_FLOW_CONTROL_WINDOW_BYTES: String(8 * 1024 * 1024),
    });
    servers.push(server);
    const session = http2.connect(`http://127.0.0.1:${ports.grpcPort}`);
    try {
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      // The kit raises it to the largest value any server in the process asked for (16 MiB default).
      expect(settings.initialWindowSize).toBeGreaterThanOrEqual(8 * 1024 * 1024);
      for (let i = 0; i < 50 && (session.state.remoteWindowSize ?? 0) < 8 * 1024 * 1024; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(session.state.remoteWindowSize).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    } finally {
      session.close();
    }
  });
});
