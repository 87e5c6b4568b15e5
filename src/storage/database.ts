/**
 * The one SQL contract of Tessera. PostgreSQL (through `pg`) and the embedded PGlite both
 * implement it, so every repository and migration runs unchanged on either.
 */
export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface QueryOptions {
  /**
   * Plan once per connection and reuse the plan (a named prepared statement on PostgreSQL). For
   * fixed statements on hot paths only: planning a join costs more than running it (about 1 ms
   * against 0.3 ms for the reference-token lookup), and each distinct text prepared stays on
   * every pooled connection. PGlite, one in-process session, ignores it.
   */
  prepare?: boolean;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` only if this process obtains the session-level advisory lock `key`; returns
   * undefined when another node holds it. Used so background jobs run on one node at a time.
   */
  withAdvisoryLock<T>(key: number, fn: () => Promise<T>): Promise<T | undefined>;
  /** Runs `fn` on one dedicated connection (the migration runner needs BEGIN/COMMIT on one session). */
  withConnection<T>(fn: (connection: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** SQLSTATE codes Tessera reacts to (PostgreSQL Appendix A). */
export const PG_UNIQUE_VIOLATION = '23505';

export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string } | null)?.code === PG_UNIQUE_VIOLATION;
}

export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
}
