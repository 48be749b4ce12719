import { readFileSync, renameSync, writeFileSync } from 'node:fs';

import { experimental, status, type ChannelOptions } from '@grpc/grpc-js';

/** URI scheme of {@link registerTargetsFileResolver}: `curia-targets:///abs/path/to/file`. */
export const TARGETS_FILE_SCHEME = 'curia-targets';

/** Fewest milliseconds between two reads of a targets file (round_robin asks often while peers are down). */
const MIN_REREAD_MS = 200;

/**
 * Parses a targets file: `IPv4:port` or `[IPv6]:port` entries separated by commas, whitespace or
 * newlines; `#` starts a comment. Throws on an entry that is not an IP:port.
 */
export function parseTargetsFile(text: string): experimental.Endpoint[] {
  const entries = text
    .split('\n')
    .map((line) => line.replace(/#.*/, ''))
    .join(' ')
    .split(/[\s,]+/)
    .filter(Boolean);
  return entries.map((entry) => {
    const m = /^(?:(\d+\.\d+\.\d+\.\d+)|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/.exec(entry);
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) {
      throw new Error(`targets file entry '${entry}' is not IPv4:port or [IPv6]:port`);
    }
    return { addresses: [{ host: m[1] ?? m[2] ?? '', port }] };
  });
}

/**
 * Atomically replaces a targets file (write + rename), so a resolver never reads half a list.
 */
export function writeTargetsFile(path: string, targets: readonly string[]): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${targets.join('\n')}\n`);
  renameSync(tmp, path);
}

/**
 * Resolves `curia-targets:///path` by reading the file each time grpc-js asks for a new
 * resolution. grpc-js asks when a connection closes — in particular when the server ends it at
 * its max connection age (`CURIA_MAX_CONNECTION_AGE_MS`) — so a replica written into the file
 * while a channel is open receives traffic within one max connection age, like a DNS name of a
 * Kubernetes headless Service, but for replicas started on loopback by a local launcher.
 */
class TargetsFileResolver implements experimental.Resolver {
  private readonly path: string;
  private lastRead = 0;
  private timer: NodeJS.Timeout | null = null;
  private destroyed = false;

  constructor(
    target: experimental.GrpcUri,
    private readonly listener: experimental.ResolverListener,
    _options: ChannelOptions,
  ) {
    // grpc-js parses `scheme:///tmp/x` as authority '' and path 'tmp/x'.
    this.path = target.path.startsWith('/') ? target.path : `/${target.path}`;
  }

  updateResolution(): void {
    this.destroyed = false;
    if (this.timer) return;
    const wait = Math.max(0, this.lastRead + MIN_REREAD_MS - Date.now());
    // Never call the listener synchronously (the Resolver contract); wait out the re-read interval.
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.destroyed) return;
      this.lastRead = Date.now();
      this.listener(this.read(), {}, null, '');
    }, wait);
    this.timer.unref();
  }

  destroy(): void {
    this.destroyed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private read(): experimental.StatusOr<experimental.Endpoint[]> {
    try {
      const endpoints = parseTargetsFile(readFileSync(this.path, 'utf8'));
      if (endpoints.length === 0) {
        return experimental.statusOrFromError({
          code: status.UNAVAILABLE,
          details: `targets file ${this.path} lists no address`,
        });
      }
      return experimental.statusOrFromValue(endpoints);
    } catch (err) {
      return experimental.statusOrFromError({
        code: status.UNAVAILABLE,
        details: `cannot read targets file ${this.path}: ${err instanceof Error ? err.message : String(err)}`,
      });
    }
  }

  static getDefaultAuthority(target: experimental.GrpcUri): string {
    return target.authority || 'localhost';
  }
}

let registered = false;

/**
 * Registers the `curia-targets:` scheme with grpc-js (idempotent; {@link createCuriaChannel}
 * calls it). A target `curia-targets:///tmp/embed.targets` balances over the addresses listed in
 * that file and picks up changes on the next re-resolution.
 */
export function registerTargetsFileResolver(): void {
  if (registered) return;
  experimental.registerResolver(TARGETS_FILE_SCHEME, TargetsFileResolver);
  registered = true;
}

/** The channel target of a targets file: `curia-targets:///<absolute path>`. */
export function targetsFileUri(absolutePath: string): string {
  if (!absolutePath.startsWith('/'))
    throw new Error(`targets file path must be absolute (got ${absolutePath})`);
  return `${TARGETS_FILE_SCHEME}://${absolutePath}`;
}
