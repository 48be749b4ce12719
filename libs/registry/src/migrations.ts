import type pg from 'pg';

/** One schema step; applied once, in order, inside a transaction. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

/**
 * The registry's schema, newest last. Never edit an applied step: add the next one. Versions are
 * immutable in the database too (a trigger refuses UPDATE), so no code path can rewrite a head.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'head versions, names and aliases',
    sql: `
CREATE TABLE curia_head_versions (
  kind            text        NOT NULL,
  name            text        NOT NULL,
  version         integer     NOT NULL CHECK (version > 0),
  metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
  payload         bytea       NOT NULL,
  payload_bytes   bigint      NOT NULL CHECK (payload_bytes >= 0),
  fit_report      jsonb,
  creator         text        NOT NULL DEFAULT '',
  created_at      timestamptz NOT NULL DEFAULT now(),
  idempotency_key text,
  PRIMARY KEY (kind, name, version),
  UNIQUE (kind, idempotency_key)
);
CREATE TABLE curia_head_names (
  kind         text    NOT NULL,
  name         text    NOT NULL,
  next_version integer NOT NULL DEFAULT 1,
  PRIMARY KEY (kind, name)
);
CREATE SEQUENCE curia_head_alias_revision;
CREATE TABLE curia_head_aliases (
  kind        text        NOT NULL,
  name        text        NOT NULL,
  version     integer     NOT NULL,
  revision    bigint      NOT NULL DEFAULT nextval('curia_head_alias_revision'),
  promoted_by text        NOT NULL DEFAULT '',
  promoted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, name),
  FOREIGN KEY (kind, name, version) REFERENCES curia_head_versions (kind, name, version)
);
CREATE FUNCTION curia_head_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'head versions are immutable (% % v%)', OLD.kind, OLD.name, OLD.version
    USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER curia_head_versions_no_update BEFORE UPDATE ON curia_head_versions
  FOR EACH ROW EXECUTE FUNCTION curia_head_versions_immutable();
`,
  },
];

/** The session advisory lock every migrating replica takes first (an arbitrary, fixed 64-bit key). */
export const MIGRATION_LOCK_KEY = '7306925271094128641';

/**
 * Brings the schema up to date: takes the migration advisory lock (so replicas starting together
 * wait for each other instead of racing), then applies each missing step in its own transaction and
 * records it in `curia_schema_migrations`. Refuses a database whose schema is newer than this build.
 * Returns the versions it applied.
 */
export async function migrate(client: pg.ClientBase, migrations = MIGRATIONS): Promise<number[]> {
  await client.query('SELECT pg_advisory_lock($1::bigint)', [MIGRATION_LOCK_KEY]);
  try {
    await client.query(
      `CREATE TABLE IF NOT EXISTS curia_schema_migrations (
         version    integer PRIMARY KEY,
         name       text NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM curia_schema_migrations');
    const applied = new Set(rows.map((r) => r.version));
    const known = Math.max(0, ...migrations.map((m) => m.version));
    const newest = Math.max(0, ...applied);
    if (newest > known) {
      throw new Error(
        `the database schema is at version ${newest}, newer than this build knows (${known}); ` +
          'deploy a build that knows it (never downgrade the registry schema)',
      );
    }
    const done: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO curia_schema_migrations (version, name) VALUES ($1, $2)', [
          m.version,
          m.name,
        ]);
        await client.query('COMMIT');
      } catch (e) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw new Error(`migration ${m.version} (${m.name}) failed: ${(e as Error).message}`, { cause: e });
      }
      done.push(m.version);
    }
    return done;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
  }
}
