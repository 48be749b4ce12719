import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway PostgreSQL cluster for tests: its own data directory, port and socket directory. */
export interface TestPostgres {
  /** `postgresql://curia:<password>@127.0.0.1:<port>/postgres` (password auth over TCP). */
  readonly dsn: string;
  readonly password: string;
  readonly port: number;
  /** The temp directory holding the data directory, the socket and the server log. */
  readonly dir: string;
  /** Stops the server (fast shutdown: open sessions are terminated), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes every file. */
  destroy(): Promise<void>;
}

/**
 * The directory holding `initdb`/`pg_ctl`: `CURIA_TEST_POSTGRES_BIN` when set (only there), else PATH,
 * then Debian's /usr/lib/postgresql/<major>/bin.
 */
export function findPostgresBin(): string | undefined {
  const forced = process.env.CURIA_TEST_POSTGRES_BIN;
  if (forced !== undefined) return existsSync(join(forced, 'initdb')) ? forced : undefined;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const majors = readdirSync(base)
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(b) - Number(a));
  for (const m of majors) if (existsSync(join(base, m, 'bin', 'initdb'))) return join(base, m, 'bin');
  return undefined;
}

/** The path of a PostgreSQL client tool (`pg_dump`, `pg_restore`, `psql`): PATH, then Debian's bin directories. */
export function findPostgresTool(tool: string): string | undefined {
  const base = '/usr/lib/postgresql';
  const debian = existsSync(base)
    ? readdirSync(base)
        .filter((d) => /^\d+$/.test(d))
        .sort((a, b) => Number(b) - Number(a))
        .map((m) => join(base, m, 'bin'))
    : [];
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...debian]) {
    if (dir && existsSync(join(dir, tool))) return join(dir, tool);
  }
  return undefined;
}

/**
 * Starts a throwaway cluster (`initdb` into a temp directory, `pg_ctl start` on a free port with
 * its unix socket in the same directory), or returns why it cannot. PostgreSQL refuses to run as
 * root, so as root (CI, containers) the cluster is created and run as `nobody` through `runuser`.
 */
export async function startTestPostgres(): Promise<TestPostgres | { unavailable: string }> {
  const bin = findPostgresBin();
  if (!bin)
    return {
      unavailable:
        process.env.CURIA_TEST_POSTGRES_BIN !== undefined
          ? `no initdb in CURIA_TEST_POSTGRES_BIN (${process.env.CURIA_TEST_POSTGRES_BIN})`
          : 'PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)',
    };
  const root = process.getuid?.() === 0;
  if (
    root &&
    !existsSync('/usr/sbin/runuser') &&
    !existsSync('/sbin/runuser') &&
    !existsSync('/usr/bin/runuser')
  )
    return {
      unavailable: 'running as root and runuser (util-linux) is missing: cannot start PostgreSQL as nobody',
    };
  const dir = await mkdtemp(join(root ? '/tmp' : tmpdir(), 'curia-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const run = (cmd: string, args: string[]): void => {
    const full = join(bin, cmd);
    const [file, argv] = root ? ['runuser', ['-u', 'nobody', '--', full, ...args]] : [full, args];
    execFileSync(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir, timeout: 60_000 });
  };
  if (root) {
    const nobody = {
      uid: Number(execFileSync('id', ['-u', 'nobody']).toString()),
      gid: Number(execFileSync('id', ['-g', 'nobody']).toString()),
    };
    await chown(dir, nobody.uid, nobody.gid);
  }
  const pwfile = join(dir, 'pwfile');
  await writeFile(pwfile, `${password}\n`, { mode: 0o644 });
  const port = await freePort();
  let running = false;
  const start = (): Promise<void> => {
    run('pg_ctl', [
      '-D',
      data,
      '-l',
      log,
      '-w',
      '-t',
      '60',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`,
      'start',
    ]);
    running = true;
    return Promise.resolve();
  };
  const stop = (): Promise<void> => {
    if (running) run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
    running = false;
    return Promise.resolve();
  };
  // A test process that dies leaves no server behind.
  const onExit = (): void => {
    if (running)
      spawnSync(root ? 'runuser' : join(bin, 'pg_ctl'), [
        ...(root ? ['-u', 'nobody', '--', join(bin, 'pg_ctl')] : []),
        '-D',
        data,
        '-m',
        'immediate',
        'stop',
      ]);
  };
  try {
    run('initdb', [
      '-D',
      data,
      '-U',
      'curia',
      '--pwfile',
      pwfile,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--no-sync',
      '--no-instructions',
    ]);
    await rm(pwfile, { force: true });
    await start();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    const err = e as { stderr?: Buffer; message: string };
    return {
      unavailable: `cannot start PostgreSQL from ${bin}: ${err.stderr?.toString().trim() || err.message}`,
    };
  }
  process.once('exit', onExit);
  return {
    dsn: `postgresql://curia:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    password,
    port,
    dir,
    stop,
    start,
    destroy: async () => {
      process.off('exit', onExit);
      await stop().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
