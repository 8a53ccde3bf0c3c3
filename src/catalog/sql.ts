// The two catalog databases behind one small interface: SQLite embedded (better-sqlite3, a file
// under --data-dir) and PostgreSQL (pg, for replicas sharing one catalog). SQL is written once
// with `?` placeholders; PostgreSQL's `$n` numbering is produced here. Every value is a parameter.
//
// better-sqlite3 is synchronous and has one connection, so write transactions are serialised by
// a promise chain (an `await` inside one must not let another transaction's statements in);
// PostgreSQL transactions take their own pooled client.

import Database from 'better-sqlite3';
import pg from 'pg';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, StorageUnavailable } from '../errors.js';

export type SqlValue = string | number | null;

export interface Sql {
  readonly dialect: 'sqlite' | 'postgres';
  /** Where the catalog lives, without credentials, for logs. */
  readonly description: string;
  all<T = Record<string, unknown>>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

class SqliteSql implements Sql {
  readonly dialect = 'sqlite' as const;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    readonly description: string,
  ) {}

  private prepare(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      if (this.statements.size > 500) this.statements.clear();
      this.statements.set(sql, statement);
    }
    return statement;
  }

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    return this.prepare(sql).all(...params) as T[];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.prepare(sql).run(...params).changes;
  }

  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    const next = this.chain.then(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(this);
        this.db.exec('COMMIT');
        return out;
      } catch (e) {
        this.db.exec('ROLLBACK');
        throw e;
      }
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await this.chain;
    this.db.close();
  }
}

/** `?` placeholders to `$1, $2, ...` (the SQL here never has a `?` inside a literal). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

class PostgresSql implements Sql {
  readonly dialect = 'postgres' as const;
  constructor(
    private readonly client: pg.Pool | pg.PoolClient,
    readonly description: string,
    private readonly pool?: pg.Pool,
  ) {}

  async all<T>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    const result = await this.client.query(numbered(sql), params as SqlValue[]);
    return result.rows as T[];
  }

  async run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    const result = await this.client.query(numbered(sql), params as SqlValue[]);
    return result.rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
    if (!this.pool) return fn(this);
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const out = await fn(new PostgresSql(client, this.description));
      await client.query('COMMIT');
      return out;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool?.end();
  }
}

/** `postgres://user:***@host/db` for logs. */
export function redactDatabaseUrl(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@]*@/, '//$1:***@');
}

/**
 * Opens the catalog database: `postgres://` / `postgresql://` URLs, else a SQLite file path
 * (`sqlite:` prefix optional; `:memory:` for tests).
 */
export async function openSql(location: string): Promise<Sql> {
  if (/^postgres(ql)?:\/\//i.test(location)) {
    // BIGINT (sizes, offsets) as numbers: every value we store is below 2^53.
    pg.types.setTypeParser(20, (v) => Number(v));
    const pool = new pg.Pool({ connectionString: location, max: 8, connectionTimeoutMillis: 5000 });
    // An idle pooled connection that the server closes (a restart, an administrator, a network
    // cut) is reported on the pool; without a listener that 'error' event kills the process. The
    // pool drops the client, and the next query opens a new connection or fails with its error.
    pool.on('error', () => undefined);
    const sql = new PostgresSql(pool, redactDatabaseUrl(location), pool);
    try {
      await sql.all('SELECT 1');
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new StorageUnavailable(
        `catalog database ${sql.description} unreachable: ${(e as Error).message}`,
        {
          cause: e,
          code: 'connection_error',
        },
      );
    }
    return sql;
  }
  const path = location.replace(/^sqlite:/i, '');
  if (path === '') throw new ConfigError('--catalog: empty SQLite path');
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (e) {
    throw new ConfigError(`--catalog: cannot open SQLite database ${path}: ${(e as Error).message}`);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return new SqliteSql(db, `sqlite:${path}`);
}
