/** The part of modelwatch a store statement works for; each has its own deadline and memory cap. */
export const StoreRoles = ['api', 'detect', 'ingest', 'report'] as const;
/** One of {@link StoreRoles}. */
export type StoreRole = (typeof StoreRoles)[number];

/** Bounds of every statement of one role (`clickhouse.roles.<role>` in the config). */
export interface RoleLimits {
  /** Deadline of one statement, ms (sent as `max_execution_time`; past it the statement is cancelled). */
  timeoutMs: number;
  /** `max_memory_usage` of one statement, bytes; 0 leaves the server's own limit. */
  maxMemoryBytes: number;
}

/** Defaults of {@link RoleLimits} per role (the config schema uses the same numbers). */
export const DefaultRoleLimits: Readonly<Record<StoreRole, RoleLimits>> = {
  api: { timeoutMs: 30_000, maxMemoryBytes: 2 * 2 ** 30 },
  detect: { timeoutMs: 120_000, maxMemoryBytes: 4 * 2 ** 30 },
  ingest: { timeoutMs: 30_000, maxMemoryBytes: 2 * 2 ** 30 },
  report: { timeoutMs: 3_600_000, maxMemoryBytes: 8 * 2 ** 30 },
};

/** ClickHouse settings of one statement (`SETTINGS` / HTTP parameters). */
export type StoreSettings = Record<string, string | number | boolean>;

/** Options of every statement ({@link SqlPort.query}, {@link SqlPort.insert}, {@link SqlPort.command}). */
export interface StatementOptions {
  /** Values of `{name:Type}` placeholders, bound by ClickHouse (never concatenated into the SQL). */
  params?: Record<string, unknown> | undefined;
  /** Extra ClickHouse settings. The deadline, memory cap and query id marker are set by the store. */
  settings?: StoreSettings | undefined;
  /** Query id (letters, digits, `_.:-`). @default a random UUID */
  queryId?: string | undefined;
  /** Whose limits apply. @default 'api' (or what {@link SqlPort.with} bound) */
  role?: StoreRole | undefined;
  /** Deadline of this statement, ms from now. @default the role's `timeoutMs` */
  timeoutMs?: number | undefined;
  /** Absolute deadline, epoch ms (e.g. a detection run's); the statement's deadline never passes it. */
  deadline?: number | undefined;
  /** `max_memory_usage`, bytes. @default the role's `maxMemoryBytes` */
  maxMemoryBytes?: number | undefined;
  /** Aborting it cancels the statement: the call rejects (`cancelled`) and the query is killed on the server. */
  signal?: AbortSignal | undefined;
  /** What the statement does, for error messages. @default 'query' / 'insert into <table>' / 'command' */
  label?: string | undefined;
}

/** Binary output formats of {@link SqlPort.queryBinary}. */
export type BinaryFormat = 'Native' | 'RowBinary' | 'RowBinaryWithNamesAndTypes';

/** Options of {@link SqlPort.queryBinary}. */
export interface BinaryQueryOptions extends StatementOptions {
  /** Output format, appended to the statement. @default 'Native' */
  format?: BinaryFormat | undefined;
}

/**
 * A binary result as {@link SqlPort.queryBinaryFile} hands it over: read where wanted, straight into the
 * caller's memory. Valid only until the `consume` callback's promise settles.
 */
export interface BinaryResultFile {
  /** Bytes of the result. */
  readonly size: number;
  /** Reads up to `into.length` bytes at `position` into `into`; resolves with the bytes read (0 at the end). */
  read(into: Uint8Array, position: number): Promise<number>;
  /** As {@link read}, synchronously (for small reads such as block headers). */
  readSync(into: Uint8Array, position: number): number;
  /** The whole result, as {@link SqlPort.queryBinaryView} gives it (a view of a buffer the store may reuse). */
  bytes(): Promise<Uint8Array>;
}

/** Options of {@link SqlPort.insert}. */
export interface InsertOptions extends Omit<StatementOptions, 'params'> {
  /**
   * ClickHouse `insert_deduplication_token`: a re-sent insert with the same token is dropped by the
   * server (needs `non_replicated_deduplication_window` on the table, set by the migrations).
   */
  dedupToken?: string | undefined;
}

/** Text formats a pre-encoded insert body may use: accepted by a ClickHouse server and by embedded chdb's raw insert. */
export const EncodedInsertFormats = ['JSONEachRow', 'JSONCompactEachRow', 'TabSeparated', 'CSV'] as const;
/** One of {@link EncodedInsertFormats}. */
export type EncodedInsertFormat = (typeof EncodedInsertFormats)[number];

/** Options of {@link SqlPort.insertEncoded}. */
export interface EncodedInsertOptions extends InsertOptions {
  /** The format of the body. */
  format: EncodedInsertFormat;
  /** The columns the body holds, in order (required by the positional formats; others take their defaults). */
  columns?: readonly string[] | undefined;
}

/**
 * Statements against ClickHouse: what every module that writes its own SQL (drift, API, ingest) goes
 * through. Rows are JSON objects (`JSONEachRow`): 64-bit integers as JSON numbers, NaN/Infinity as text.
 * Every statement carries a deadline, a memory cap and a query id; failures are `ModelwatchError`s
 * classified by ClickHouse error code (`store_error`, `store_unavailable`, `timeout`, `cancelled`).
 */
export interface SqlPort {
  /** `chdb` (embedded) or `http` (server). */
  readonly kind: 'chdb' | 'http';
  /** Runs a read statement and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, options?: StatementOptions): Promise<T[]>;
  /** Inserts rows into `table` (JSONEachRow); no-op for none. */
  insert(table: string, rows: readonly object[], options?: InsertOptions): Promise<void>;
  /**
   * Runs a read statement and returns its result as raw bytes in a binary output format (`FORMAT <format>` is
   * appended to `sql`): e.g. `Native`, which the drift engine decodes column by column into typed arrays
   * without a per-value parse. Optional so that wrappers of the port need not implement it; the ClickHouse
   * store does.
   */
  queryBinary?(sql: string, options?: BinaryQueryOptions): Promise<Uint8Array>;
  /**
   * As {@link queryBinary}, but the result is handed to `consume`, which must be done with the bytes when it
   * returns: they may be a view of a buffer the store reuses (on the embedded engine, a result file read into
   * a pooled buffer, which avoids faulting fresh memory in for every wide result). Optional like
   * `queryBinary`; the ClickHouse store has it.
   */
  queryBinaryView?<T>(sql: string, options: BinaryQueryOptions, consume: (bytes: Uint8Array) => T): Promise<T>;
  /**
   * As {@link queryBinaryView}, but `consume` reads the result itself ({@link BinaryResultFile}): on the embedded
   * engine, from the result file, so that values can be read straight into their final arrays (no whole-result
   * buffer, no copy out of it). Optional like `queryBinary`; the ClickHouse store has it.
   */
  queryBinaryFile?<T>(
    sql: string,
    options: BinaryQueryOptions,
    consume: (file: BinaryResultFile) => Promise<T>,
  ): Promise<T>;
  /** Runs a statement without result rows (DDL, `INSERT … SELECT`, `SYSTEM`, …). */
  command(sql: string, options?: StatementOptions): Promise<void>;
  /** The same store with default options for every statement (role, signal, deadline); later options win. */
  with(defaults: StatementOptions): SqlPort;
}

/** Every role's limits: the given ones over {@link DefaultRoleLimits}. */
export function resolveRoleLimits(limits: Partial<Record<StoreRole, RoleLimits>> = {}): Record<StoreRole, RoleLimits> {
  return { ...DefaultRoleLimits, ...limits };
}
