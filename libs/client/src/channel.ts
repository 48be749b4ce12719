import { readFileSync } from 'node:fs';

import { ChannelCredentials, experimental } from '@grpc/grpc-js';
import { createChannel, waitForChannelReady, type Channel } from 'nice-grpc';

import { registerTargetsFileResolver } from './targets-file.js';

/** TLS settings of a client channel. */
export interface ClientTls {
  /** PEM CA bundle that signed the server certificate (default: the system roots). */
  readonly caFile?: string;
  /** PEM client certificate and key, for mTLS. */
  readonly certFile?: string;
  readonly keyFile?: string;
  /**
   * Re-read the CA, certificate and key every this many ms (rotation without restart; needs
   * `caFile`). Unset: read once when the channel is created.
   */
  readonly reloadMs?: number;
}

/** Options of {@link createCuriaChannel}. */
export interface CuriaChannelOptions {
  readonly tls?: ClientTls;
  /** Largest message accepted from the server, bytes (default 64 MiB, the servers' send limit). */
  readonly maxReceiveMessageBytes?: number;
  /** Largest message sent, bytes (default 64 MiB, the servers' receive limit). */
  readonly maxSendMessageBytes?: number;
  /**
   * Keepalive ping interval, ms (default 30 s). Matches the servers' policy: they ping every
   * 30 s themselves and permit pings without calls, so idle connections through NATs and
   * load balancers stay open and dead peers are detected within ~40 s.
   */
  readonly keepaliveTimeMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /**
   * Bound on one connection attempt (TCP + TLS + HTTP/2 SETTINGS), ms (default 5 s). grpc-js
   * alone can sit in CONNECTING forever on a half-open path; nice-grpc enforces this bound.
   */
  readonly connectTimeoutMs?: number;
  /**
   * HTTP/2 flow-control window, bytes (default 16 MiB). grpc-js starts at 64 KiB, which caps a
   * stream of 1 MiB slices at a fraction of loopback bandwidth.
   */
  readonly flowControlWindowBytes?: number;
}

/**
 * Normalises a target: `host:port` → `dns:///host:port` (all A records, re-resolved on
 * reconnect: with a Kubernetes headless Service that is every ready pod); a list of addresses →
 * a static `ipv4:`/`ipv6:` list. Targets with a scheme pass through (including
 * `curia-targets:///path`, a file of addresses re-read on re-resolution: see targets-file.ts).
 */
export function normalizeTarget(target: string | readonly string[]): string {
  const list = (typeof target === 'string' ? target.split(',') : [...target])
    .map((t) => t.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error('empty gRPC target');
  if (list.length === 1) {
    const t = list[0]!;
    return /^[a-z][a-z0-9+.-]*:/i.test(t) && !/^[^:/]+:\d+$/.test(t) ? t : `dns:///${t}`;
  }
  const hosts = list.map((t) => t.replace(/^localhost:/, '127.0.0.1:'));
  const v6 = hosts.every((h) => h.startsWith('['));
  if (!v6 && !hosts.every((h) => /^\d+\.\d+\.\d+\.\d+:\d+$/.test(h))) {
    throw new Error(
      `a static target list must hold IP:port entries (got ${hosts.join(',')}); use one DNS name instead`,
    );
  }
  return `${v6 ? 'ipv6' : 'ipv4'}:${hosts.join(',')}`;
}

/**
 * A channel to one Curia service (possibly many replicas) with client-side `round_robin`
 * balancing, keepalive matched to the servers, explicit message limits and fast DNS
 * re-resolution (servers close connections at their max connection age so clients rebalance).
 */
export function createCuriaChannel(
  target: string | readonly string[],
  options: CuriaChannelOptions = {},
): Channel {
  const mb64 = 64 * 1024 * 1024;
  registerTargetsFileResolver();
  return createChannel(normalizeTarget(target), channelCredentials(options.tls), {
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes ?? mb64,
    'grpc.max_send_message_length': options.maxSendMessageBytes ?? mb64,
    'grpc.keepalive_time_ms': options.keepaliveTimeMs ?? 30_000,
    'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs ?? 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.dns_min_time_between_resolutions_ms': 2_000,
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 5_000,
    // nice-grpc reads this as the connect timeout (the MIN_CONNECT_TIMEOUT of the backoff spec).
    'grpc.min_reconnect_backoff_ms': options.connectTimeoutMs ?? 5_000,
    // Retries of processed calls are the retry middleware's (it knows which methods are
    // idempotent; no retryPolicy here). Left enabled, grpc-js still retries *transparently* a
    // call the server refused unprocessed (REFUSED_STREAM at a max-age GOAWAY), which is always
    // safe; it buffers at most grpc.per_rpc_retry_buffer_size (256 KiB) per call until committed.
    'grpc.enable_retries': 1,
    'grpc-node.flow_control_window': options.flowControlWindowBytes ?? 16 * 1024 * 1024,
  });
}

function channelCredentials(tls: ClientTls | undefined): ChannelCredentials {
  if (!tls) return ChannelCredentials.createInsecure();
  if (tls.reloadMs && tls.caFile) {
    const refreshIntervalMs = tls.reloadMs;
    const ca = new experimental.FileWatcherCertificateProvider({
      caCertificateFile: tls.caFile,
      refreshIntervalMs,
    });
    const identity =
      tls.certFile && tls.keyFile
        ? new experimental.FileWatcherCertificateProvider({
            certificateFile: tls.certFile,
            privateKeyFile: tls.keyFile,
            refreshIntervalMs,
          })
        : null;
    return experimental.createCertificateProviderChannelCredentials(ca, identity);
  }
  return ChannelCredentials.createSsl(
    tls.caFile ? readFileSync(tls.caFile) : null,
    tls.keyFile ? readFileSync(tls.keyFile) : null,
    tls.certFile ? readFileSync(tls.certFile) : null,
  );
}

/**
 * Waits until the channel is connected, failing after `timeoutMs`. grpc-js can otherwise sit
 * in CONNECTING until each call's deadline; use this at startup to fail fast on a bad address.
 */
export async function waitForReady(channel: Channel, timeoutMs: number): Promise<void> {
  try {
    await waitForChannelReady(channel, new Date(Date.now() + timeoutMs));
  } catch (err) {
    throw new Error(`could not connect to ${channel.getTarget()} within ${timeoutMs} ms`, { cause: err });
  }
}
