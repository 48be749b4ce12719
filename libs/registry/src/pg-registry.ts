import { CuriaError, isCuriaError } from '@curia/errors';
import {
  aliasOnAdd,
  CachedHeadRegistry,
  checkHeadName,
  checkPromoteVersion,
  decodeItem,
  encodeItem,
  packFiles,
  unpackFiles,
  type AddOptions,
  type Promoted,
  type VersionCodec,
  type Versioned,
} from '@curia/heads';
import pg from 'pg';

import { migrate } from './migrations.js';

/** Limits on what one registry kind may hold; unset = unlimited. */
export interface RegistryQuotas {
  readonly maxVersionsPerName?: number;
  readonly maxBytesPerName?: number;
  readonly maxVersionsTotal?: number;
  readonly maxBytesTotal?: number;
}

/** `limits` without the ones that are 0: the services' variables read 0 as "no limit". */
export function registryQuotas(limits: RegistryQuotas): RegistryQuotas {
  return Object.fromEntries(Object.entries(limits).filter(([, n]) => n !== undefined && n > 0));
}

export interface PgHeadRegistryOptions<T> {
  /** `postgresql://user:password@host:port/db` (libpq-style URL; its password is never logged). */
  readonly dsn: string;
  /** Which registry this is in the shared tables (`heads`, `segment-heads`): names are per kind. */
  readonly kind: string;
  readonly codec: VersionCodec<T>;
  readonly quotas?: RegistryQuotas;
  /** Where lifecycle lines go (connection lost/restored, skipped rows); never given the password. */
  readonly log?: (level: 'info' | 'warn' | 'error', message: string) => void;
  /** Hears about stored versions this build cannot decode (they are skipped, like the fs store does). */
  readonly onSkip?: (ref: string, err: unknown) => void;
  /** Reconnect backoff, doubling from `min` to `max` (ms). Default 250 → 5000. */
  readonly reconnectMs?: { readonly min: number; readonly max: number };
  /** Connect timeout per attempt (ms). Default 5000. */
  readonly connectTimeoutMs?: number;
  /** Per-statement timeout of writes (ms). Default 30000. */
  readonly queryTimeoutMs?: number;
  /** The LISTEN/NOTIFY channel. Default `curia_head_registry`. */
  readonly channel?: string;
}

const KIND_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;

interface Notice {
  readonly kind: string;
  readonly event: 'version' | 'promote';
  readonly name: string;
  readonly version: number;
  readonly revision?: string;
}

interface VersionRow {
  name: string;
  version: number;
  payload: Buffer;
  creator: string;
  created_at: Date;
}

/**
 * The shared head registry in PostgreSQL: every replica of every service that stores heads reads and
 * writes it. Immutable integer versions per name (allocated under a per-name row lock, so adds from
 * any number of replicas never collide or get lost), an alias per name naming the promoted version,
 * per-name and total quotas, and `LISTEN/NOTIFY` so every instance updates its in-memory cache the
 * moment another one adds or promotes.
 *
 * Reads always answer from that cache, so they keep working while the database is away; writes then
 * fail with UNAVAILABLE and the instance reconnects in the background (re-LISTEN, then resync of what
 * it missed).
 */
export class PgHeadRegistry<T> extends CachedHeadRegistry<T> {
  private readonly aliasRevision = new Map<string, bigint>();
  private readonly config: pg.ClientConfig;
  private readonly where: string;
  private readonly channel: string;
  private pool: pg.Pool | undefined;
  private listener: pg.Client | undefined;
  private connected = false;
  private closed = false;
  private backoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly skipped = new Set<string>();

  private constructor(private readonly options: PgHeadRegistryOptions<T>) {
    super(options.codec);
    this.where = redactDsn(options.dsn);
    this.channel = options.channel ?? 'curia_head_registry';
    this.backoffMs = this.options.reconnectMs?.min ?? 250;
    this.config = {
      connectionString: options.dsn,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
      query_timeout: options.queryTimeoutMs ?? 30_000,
      keepAlive: true,
      application_name: `curia-head-registry/${options.kind}`,
    };
  }

  /**
   * Connects, migrates the schema (under the migration advisory lock), loads every version and
   * alias of `kind`, and starts listening. Throws UNAVAILABLE (database unreachable) or
   * FAILED_PRECONDITION (migration refused) with a message that names the database but never its
   * password: a service maps either to NOT_SERVING.
   */
  static async open<T>(options: PgHeadRegistryOptions<T>): Promise<PgHeadRegistry<T>> {
    if (!KIND_RE.test(options.kind)) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `registry kind '${options.kind}' must match ${KIND_RE.source}`,
      );
    }
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(options.channel ?? 'curia_head_registry')) {
      throw new CuriaError(
        'INVALID_ARGUMENT',
        `channel '${options.channel}' must be a plain lowercase identifier`,
      );
    }
    const r = new PgHeadRegistry(options);
    try {
      const client = new pg.Client(r.config);
      client.on('error', () => undefined);
      try {
        await client.connect();
      } catch (e) {
        throw r.unavailable('cannot connect to the head registry database', e, true);
      }
      try {
        await migrate(client);
      } catch (e) {
        if (isConnectionError(e))
          throw r.unavailable('lost the head registry database while migrating', e, true);
        throw new CuriaError(
          'FAILED_PRECONDITION',
          `head registry schema migration on ${r.where} failed: ${(e as Error).message}`,
          { cause: e },
        );
      } finally {
        await client.end().catch(() => undefined);
      }
      r.pool = new pg.Pool({ ...r.config, max: 4, idleTimeoutMillis: 10_000 });
      // An idle pooled connection dying (database restart) is reported here; the pool drops it.
      r.pool.on('error', () => undefined);
      try {
        await r.listen();
        await r.resync();
      } catch (e) {
        throw isCuriaError(e) ? e : r.unavailable('cannot load the head registry', e, true);
      }
      r.connected = true;
      return r;
    } catch (e) {
      await r.close();
      throw e;
    }
  }

  /** True while the database connection (and its LISTEN) is up; writes are refused otherwise. */
  get available(): boolean {
    return this.connected;
  }

  /**
   * Throws what a write would (UNAVAILABLE with `retryAfterMs`, FAILED_PRECONDITION once closed)
   * when it would be refused now, so a caller can refuse work before doing it.
   */
  checkWritable(what: string): void {
    if (this.closed) throw new CuriaError('FAILED_PRECONDITION', 'the head registry is closed');
    if (!this.connected) {
      throw this.unavailable(`cannot ${what}: the head registry database is unreachable`);
    }
  }

  /**
   * Stores `item` as the next version of `name`. In one transaction: the kind's advisory lock (so
   * total quotas count consistently), the name's counter row `FOR UPDATE` (the version allocation),
   * the idempotency key check (a retry gets the version it already stored), the quotas, the insert,
   * the alias as {@link aliasOnAdd} says (the new version when `promote` or first; a name without an
   * alias has it pinned to the version that resolved before), and the notifications (delivered on
   * commit).
   */
  async add(name: string, item: T, options?: AddOptions): Promise<Versioned<T>> {
    checkHeadName(name);
    const { codec, kind } = this.options;
    const key = codec.idempotencyKey?.(item);
    const creator = options?.creator ?? '';
    const known = key ? this.cache.byIdempotencyKey(key) : undefined;
    if (known) return known;
    return this.write('store the head version', async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`curia_head_registry:${kind}`]);
      if (key) {
        const hit = await c.query<{ name: string; version: number }>(
          'SELECT name, version FROM curia_head_versions WHERE kind = $1 AND idempotency_key = $2',
          [kind, key],
        );
        const found = hit.rows[0];
        if (found) return { done: await this.ensure(c, found.name, found.version) };
      }
      await c.query(
        'INSERT INTO curia_head_names (kind, name) VALUES ($1, $2) ON CONFLICT (kind, name) DO NOTHING',
        [kind, name],
      );
      const counter = await c.query<{ next_version: number }>(
        'SELECT next_version FROM curia_head_names WHERE kind = $1 AND name = $2 FOR UPDATE',
        [kind, name],
      );
      const version = counter.rows[0]!.next_version;
      const plan = aliasOnAdd(await this.aliasState(c, name), options?.promote ?? false);
      const stored = codec.withVersion(item, name, String(version));
      const payload = packFiles(await encodeItem(codec, stored));
      await this.checkQuotas(c, name, payload.length);
      await codec.prepare?.(stored);
      const ins = await c.query<{ created_at: Date }>(
        `INSERT INTO curia_head_versions
           (kind, name, version, metadata, payload, payload_bytes, fit_report, creator, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING created_at`,
        [
          kind,
          name,
          version,
          JSON.stringify(codec.metadata?.(stored) ?? {}),
          payload,
          payload.length,
          ((r) => (r === undefined ? null : JSON.stringify(r)))(codec.fitReport?.(stored)),
          creator,
          key ?? null,
        ],
      );
      await c.query('UPDATE curia_head_names SET next_version = $3 WHERE kind = $1 AND name = $2', [
        kind,
        name,
        version + 1,
      ]);
      await this.notify(c, { kind, event: 'version', name, version });
      const pin = plan.pin === undefined ? undefined : Number(plan.pin);
      const pinRevision = pin === undefined ? undefined : await this.setAlias(c, name, pin, creator);
      const revision = plan.promoteNew ? await this.setAlias(c, name, version, creator) : undefined;
      const v: Versioned<T> = {
        name,
        version: String(version),
        item: stored,
        creator,
        createdAt: ins.rows[0]!.created_at.toISOString(),
      };
      return {
        done: v,
        after: () => {
          if (!this.cache.has(name, v.version)) {
            this.cache.put(v);
            this.cache.emit({ kind: 'version', name, version: v.version });
          }
          if (pin !== undefined && pinRevision !== undefined) this.applyAlias(name, pin, pinRevision);
          if (revision !== undefined) this.applyAlias(name, version, revision);
        },
      };
    });
  }

  /**
   * Points `name`'s alias at an existing version, atomically (one row, one transaction, under the
   * name's counter row lock, so it never interleaves with an add's alias pin); returns it with the
   * version that resolved before.
   */
  async promote(name: string, version: string, options: { readonly creator: string }): Promise<Promoted<T>> {
    checkHeadName(name);
    checkPromoteVersion(version);
    if (!/^[1-9]\d{0,9}$/.test(version)) {
      throw new CuriaError('INVALID_ARGUMENT', `promote needs a version number, got '${version}'`);
    }
    const v = Number(version);
    const { kind } = this.options;
    return this.write('promote the head version', async (c) => {
      await c.query('SELECT 1 FROM curia_head_names WHERE kind = $1 AND name = $2 FOR UPDATE', [kind, name]);
      const target = await this.ensure(c, name, v);
      const before = await this.aliasState(c, name);
      const previous = before.alias ?? before.latest;
      const revision = await this.setAlias(c, name, v, options.creator);
      return { done: { ...target, previous }, after: () => this.applyAlias(name, v, revision) };
    });
  }

  /** Stops listening and reconnecting, and closes every connection. The cache stays readable. */
  async close(): Promise<void> {
    this.closed = true;
    this.connected = false;
    clearTimeout(this.timer);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
    await this.pool?.end().catch(() => undefined);
    await this.queue.catch(() => undefined);
  }

  // --- writes -------------------------------------------------------------------------------

  private async write<R>(
    what: string,
    body: (c: pg.PoolClient) => Promise<{ done: R; after?: () => void }>,
  ): Promise<R> {
    this.checkWritable(what);
    if (!this.pool) throw this.unavailable(`cannot ${what}: the head registry database is unreachable`);
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      this.lost(e);
      throw this.unavailable(`cannot ${what}: the head registry database is unreachable`, e);
    }
    let broken = false;
    const onError = (): void => {
      broken = true;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      const { done, after } = await body(client);
      await client.query('COMMIT');
      after?.();
      return done;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (isConnectionError(e)) {
        broken = true;
        this.lost(e);
        throw this.unavailable(
          `cannot ${what}: lost the head registry database (the write was not stored)`,
          e,
        );
      }
      if (isCuriaError(e)) throw e;
      throw new CuriaError('INTERNAL', `cannot ${what}: ${(e as Error).message}`, { cause: e });
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  private async checkQuotas(c: pg.ClientBase, name: string, bytes: number): Promise<void> {
    const q = this.options.quotas ?? {};
    const { kind } = this.options;
    const count = async (byName: boolean): Promise<{ n: number; b: number }> => {
      const r = await c.query<{ n: number; b: string }>(
        `SELECT count(*)::int AS n, coalesce(sum(payload_bytes), 0)::text AS b
           FROM curia_head_versions WHERE kind = $1 ${byName ? 'AND name = $2' : ''}`,
        byName ? [kind, name] : [kind],
      );
      return { n: r.rows[0]!.n, b: Number(r.rows[0]!.b) };
    };
    const refuse = (quota: string, limit: number, detail: string): never => {
      throw new CuriaError(
        'RESOURCE_EXHAUSTED',
        `head registry quota ${quota} (${limit}) reached for ${kind}: ${detail}; ` +
          `promote and reuse an existing version, or raise ${quota}`,
      );
    };
    if (q.maxVersionsPerName !== undefined || q.maxBytesPerName !== undefined) {
      const { n, b } = await count(true);
      if (q.maxVersionsPerName !== undefined && n + 1 > q.maxVersionsPerName)
        refuse('maxVersionsPerName', q.maxVersionsPerName, `'${name}' already has ${n} versions`);
      if (q.maxBytesPerName !== undefined && b + bytes > q.maxBytesPerName)
        refuse(
          'maxBytesPerName',
          q.maxBytesPerName,
          `'${name}' holds ${b} bytes and this version is ${bytes}`,
        );
    }
    if (q.maxVersionsTotal !== undefined || q.maxBytesTotal !== undefined) {
      const { n, b } = await count(false);
      if (q.maxVersionsTotal !== undefined && n + 1 > q.maxVersionsTotal)
        refuse('maxVersionsTotal', q.maxVersionsTotal, `the registry holds ${n} versions`);
      if (q.maxBytesTotal !== undefined && b + bytes > q.maxBytesTotal)
        refuse(
          'maxBytesTotal',
          q.maxBytesTotal,
          `the registry holds ${b} bytes and this version is ${bytes}`,
        );
    }
  }

  /** The name's alias and latest stored version, as the transaction of `c` sees them. */
  private async aliasState(
    c: pg.ClientBase,
    name: string,
  ): Promise<{ latest: string | undefined; alias: string | undefined }> {
    const { kind } = this.options;
    const r = await c.query<{ latest: number | null; alias: number | null }>(
      `SELECT (SELECT max(version) FROM curia_head_versions WHERE kind = $1 AND name = $2) AS latest,
              (SELECT version FROM curia_head_aliases WHERE kind = $1 AND name = $2) AS alias`,
      [kind, name],
    );
    const row = r.rows[0];
    return {
      latest: row?.latest == null ? undefined : String(row.latest),
      alias: row?.alias == null ? undefined : String(row.alias),
    };
  }

  private async setAlias(c: pg.ClientBase, name: string, version: number, creator: string): Promise<bigint> {
    const { kind } = this.options;
    const r = await c.query<{ revision: string }>(
      `INSERT INTO curia_head_aliases (kind, name, version, promoted_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kind, name) DO UPDATE
         SET version = EXCLUDED.version, promoted_by = EXCLUDED.promoted_by,
             promoted_at = now(), revision = nextval('curia_head_alias_revision')
       RETURNING revision::text`,
      [kind, name, version, creator],
    );
    const revision = r.rows[0]!.revision;
    await this.notify(c, { kind, event: 'promote', name, version, revision });
    return BigInt(revision);
  }

  private async notify(c: pg.ClientBase, n: Notice): Promise<void> {
    await c.query('SELECT pg_notify($1, $2)', [this.channel, JSON.stringify(n)]);
  }

  /** Applies an alias unless a newer promotion (higher revision) was applied already. */
  private applyAlias(name: string, version: number, revision: bigint): void {
    const seen = this.aliasRevision.get(name);
    if (seen !== undefined && seen >= revision) return;
    if (!this.cache.has(name, String(version))) return;
    this.aliasRevision.set(name, revision);
    const before = this.cache.promoted(name);
    this.cache.setAlias(name, String(version));
    if (before !== String(version)) this.cache.emit({ kind: 'promote', name, version: String(version) });
  }

  // --- reads from the database (into the cache) ---------------------------------------------

  /** The version from the cache, else read (and cached) through `c`; NOT_FOUND when it is not stored. */
  private async ensure(c: pg.ClientBase | pg.Pool, name: string, version: number): Promise<Versioned<T>> {
    const have = this.cache.has(name, String(version)) ? this.cache.get(name, String(version)) : undefined;
    if (have) return have;
    const r = await c.query<VersionRow>(
      `SELECT name, version, payload, creator, created_at FROM curia_head_versions
        WHERE kind = $1 AND name = $2 AND version = $3`,
      [this.options.kind, name, version],
    );
    const row = r.rows[0];
    if (!row) {
      this.cache.get(name, String(version)); // throws NOT_FOUND naming what exists
      throw new CuriaError('NOT_FOUND', `no head named '${name}'`);
    }
    const v = await this.decode(row);
    if (!v) throw new CuriaError('FAILED_PRECONDITION', `stored head ${name}@${version} cannot be decoded`);
    return v;
  }

  /** Decodes and caches a row (announcing it); undefined (and reported once) when it cannot be decoded. */
  private async decode(row: VersionRow): Promise<Versioned<T> | undefined> {
    const version = String(row.version);
    if (this.cache.has(row.name, version)) return this.cache.get(row.name, version);
    try {
      const item = await decodeItem(this.options.codec, unpackFiles(row.payload), row.name, version);
      const v: Versioned<T> = {
        name: row.name,
        version,
        item,
        creator: row.creator,
        createdAt: row.created_at.toISOString(),
      };
      if (this.cache.has(row.name, version)) return this.cache.get(row.name, version);
      this.cache.put(v);
      this.cache.emit({ kind: 'version', name: row.name, version });
      return v;
    } catch (e) {
      const ref = `${this.options.kind}/${row.name}@${version}`;
      if (!this.skipped.has(ref)) {
        this.skipped.add(ref);
        this.options.onSkip?.(ref, e);
        this.options.log?.('warn', `head registry: skipping ${ref}: ${(e as Error).message}`);
      }
      return undefined;
    }
  }

  /** Loads every version this instance lacks and every alias (at open, and after a reconnect). */
  private async resync(): Promise<void> {
    const pool = this.pool!;
    const { kind } = this.options;
    const ids = await pool.query<{ name: string; version: number }>(
      'SELECT name, version FROM curia_head_versions WHERE kind = $1 ORDER BY name, version',
      [kind],
    );
    for (const { name, version } of ids.rows) {
      if (this.cache.has(name, String(version)) || this.skipped.has(`${kind}/${name}@${version}`)) continue;
      const r = await pool.query<VersionRow>(
        `SELECT name, version, payload, creator, created_at FROM curia_head_versions
          WHERE kind = $1 AND name = $2 AND version = $3`,
        [kind, name, version],
      );
      if (r.rows[0]) await this.decode(r.rows[0]);
    }
    const aliases = await pool.query<{ name: string; version: number; revision: string }>(
      'SELECT name, version, revision::text AS revision FROM curia_head_aliases WHERE kind = $1',
      [kind],
    );
    for (const a of aliases.rows) this.applyAlias(a.name, a.version, BigInt(a.revision));
  }

  // --- LISTEN/NOTIFY and reconnection ---------------------------------------------------------

  private async listen(): Promise<void> {
    const client = new pg.Client(this.config);
    client.on('error', (e) => this.lost(e));
    client.on('end', () => this.lost());
    client.on('notification', (msg) => {
      if (msg.channel !== this.channel || !msg.payload) return;
      const payload = msg.payload;
      this.queue = this.queue.then(() => this.onNotice(payload)).catch(() => undefined);
    });
    this.listener = client;
    await client.connect();
    await client.query(`LISTEN ${this.channel}`);
  }

  private async onNotice(payload: string): Promise<void> {
    let n: Notice;
    try {
      n = JSON.parse(payload) as Notice;
    } catch {
      return;
    }
    if (n.kind !== this.options.kind || typeof n.name !== 'string' || !Number.isInteger(n.version)) return;
    if (!this.pool) return;
    try {
      const v = await this.ensure(this.pool, n.name, n.version).catch((e: unknown) => {
        if (isCuriaError(e) && e.code !== 'UNAVAILABLE') return undefined;
        throw e;
      });
      if (v && n.event === 'promote' && n.revision) this.applyAlias(n.name, n.version, BigInt(n.revision));
    } catch (e) {
      // The row read failed (database gone again): the resync after reconnecting catches up.
      this.options.log?.(
        'warn',
        `head registry: could not read ${n.name}@${n.version}: ${(e as Error).message}`,
      );
    }
  }

  /** The database went away: refuse writes, keep serving reads, and reconnect in the background. */
  private lost(e?: unknown): void {
    if (this.closed || (!this.connected && this.timer)) return;
    const wasUp = this.connected;
    this.connected = false;
    if (wasUp) {
      this.options.log?.(
        'warn',
        `head registry: lost ${this.where}${e instanceof Error ? ` (${redactMessage(e.message, this.options.dsn)})` : ''}; ` +
          "writes fail with UNAVAILABLE, reads answer from this replica's cache; reconnecting",
      );
    }
    const old = this.listener;
    this.listener = undefined;
    if (old) {
      old.removeAllListeners('end');
      old.removeAllListeners('notification');
      void old.end().catch(() => undefined);
      old.on('error', () => undefined);
    }
    if (this.timer === undefined) this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.reconnect(), this.backoffMs);
    this.timer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.closed) return;
    try {
      await this.listen();
      await this.resync();
      this.timer = undefined;
      this.connected = true;
      this.backoffMs = this.options.reconnectMs?.min ?? 250;
      this.options.log?.('info', `head registry: reconnected to ${this.where} and caught up`);
    } catch {
      const old = this.listener;
      this.listener = undefined;
      if (old) {
        old.removeAllListeners('end');
        old.on('error', () => undefined);
        void old.end().catch(() => undefined);
      }
      this.backoffMs = Math.min(this.backoffMs * 2, this.options.reconnectMs?.max ?? 5000);
      if (!this.closed) this.schedule();
    }
  }

  /** UNAVAILABLE naming the database (never its password); `opening`: there is no cache to read from yet. */
  private unavailable(message: string, cause?: unknown, opening = false): CuriaError {
    const why =
      cause === undefined
        ? ''
        : `: ${redactMessage(cause instanceof Error ? cause.message : JSON.stringify(cause), this.options.dsn)}`;
    const then = opening ? '' : "; retry shortly — reads still answer from this replica's cache";
    return new CuriaError('UNAVAILABLE', `${message} (${this.where}${why})${then}`, {
      retryAfterMs: this.backoffMs,
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

/** `postgresql://user@host:port/db`: the DSN without its password (or 'the configured database'). */
export function redactDsn(dsn: string): string {
  try {
    const u = new URL(dsn);
    const user = u.username ? `${decodeURIComponent(u.username)}@` : '';
    const host = u.host || u.searchParams.get('host') || 'localhost';
    return `${u.protocol}//${user}${host}${u.pathname}`;
  } catch {
    return 'the configured database';
  }
}

/** A driver message with any occurrence of the DSN's password removed (belt and braces). */
export function redactMessage(message: string, dsn: string): string {
  let password = '';
  try {
    password = decodeURIComponent(new URL(dsn).password);
  } catch {
    // not a URL: nothing to redact by position
  }
  return password ? message.split(password).join('***') : message;
}

/** Connection-class failures: network errors, SQLSTATE 08xxx, and the server shutting down (57P0x). */
export function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (/^08|^57P0[1-3]$/.test(code)) return true;
    if (
      ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'ENOENT'].includes(
        code,
      )
    )
      return true;
  }
  return /Connection terminated|connection error|timeout exceeded when trying to connect|Client was closed|not queryable/i.test(
    e.message,
  );
}
