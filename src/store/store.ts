import { randomUUID } from 'node:crypto';
import { accessSync, constants as fsConstants, readSync, statfsSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { classifyStoreError, storeErrorCodes } from './errors.js';
import { Tables, appliedVersions, migrate } from './migrations.js';
import {
  resolveRoleLimits,
  type BinaryQueryOptions,
  type BinaryResultFile,
  type EncodedInsertOptions,
  type InsertOptions,
  type RoleLimits,
  type SqlPort,
  type StatementOptions,
  type StoreRole,
  type StoreSettings,
} from './port.js';
import type { LabelRow, PredictionRow, QuarantineRow, RequestRow } from './rows.js';
import type { StoreClient } from './client.js';

export type { EncodedInsertOptions, InsertOptions } from './port.js';

/** The storage port used by ingest, the API and detectors: typed inserts of the core tables plus {@link SqlPort}. */
export interface Store extends SqlPort {
  with(defaults: StatementOptions): Store;
  insertPredictions(rows: PredictionRow[], options?: InsertOptions): Promise<void>;
  insertRequests(rows: RequestRow[], options?: InsertOptions): Promise<void>;
  insertLabels(rows: LabelRow[], options?: InsertOptions): Promise<void>;
  insertQuarantine(rows: QuarantineRow[], options?: InsertOptions): Promise<void>;
  /**
   * Inserts a body already encoded in `options.format` (one row per line), handed to the engine as bytes:
   * no per-row objects and no second encoding; on embedded chdb no text copy either (the engine's raw
   * insert). No-op for an empty body. Same deadline, memory cap, cancellation and `dedupToken` semantics as
   * {@link SqlPort.insert}.
   */
  insertEncoded(table: string, body: Buffer, options: EncodedInsertOptions): Promise<void>;
  /** Which of `eventIds` are already stored (request records), for idempotent ingest. */
  existingEventIds(eventIds: string[]): Promise<Set<string>>;
  /** True when the store answers. */
  ping(): Promise<boolean>;
  /** Applies pending migrations; returns the versions applied now. */
  migrate(): Promise<number[]>;
  /** Versions recorded as applied. */
  appliedVersions(): Promise<number[]>;
  close(): Promise<void>;
}

/** ClickHouse DateTime64(3) text for epoch ms ('YYYY-MM-DD hh:mm:ss.sss', UTC). */
export function toChTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  // 'YYYY-MM-DDThh:mm:ss.sssZ' (24 chars) for years 0000–9999; extended years keep the general path.
  if (iso.length === 24) return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
  return iso.replace('T', ' ').replace('Z', '');
}

// JSON has no NaN/Infinity; ClickHouse parses the quoted words into Float64 (verified on chdb 26.7).
function encodeFloatMap(map: Record<string, number>): Record<string, number | string> {
  let out: Record<string, number | string> | undefined;
  // for…in, not Object.entries: no [key, value] array per entry for the common all-finite map.
  for (const k in map) {
    const v = map[k] as number;
    if (Number.isFinite(v) || !Object.hasOwn(map, k)) continue;
    out ??= { ...map };
    out[k] = Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  }
  return out ?? map;
}

/** Options of {@link ClickHouseStore}. */
export interface ClickHouseStoreOptions {
  /** Deadline and memory cap per role. @default `DefaultRoleLimits` */
  limits?: Partial<Record<StoreRole, RoleLimits>> | undefined;
  /**
   * Embedded engine only: the directory where {@link ClickHouseStore.queryBinaryView} has the engine write a
   * binary result as a file (`INTO OUTFILE`), read back into a reused buffer, instead of receiving it through
   * the connection (whose fresh result memory costs more than the engine's own work on wide results). `false`
   * always uses the connection. A server always uses the connection.
   * @default `MODELWATCH_RESULT_DIR` when set (`0` or `off`: `false`), else `/dev/shm` when it is a writable
   * directory with at least 2 GiB free, else `false`
   */
  resultDir?: string | false | undefined;
}

/** Free space `/dev/shm` needs to hold binary results by default. */
const RESULT_DIR_MIN_FREE = 2 * 2 ** 30;
/** Read buffers kept for reuse per store, and the largest one kept. */
const RESULT_BUFFERS_KEPT = 2;
const RESULT_BUFFER_MAX_KEPT = 128 * 2 ** 20;

/**
 * The default result directory (see {@link ClickHouseStoreOptions.resultDir}): `MODELWATCH_RESULT_DIR` when set
 * (`0` or `off`: none), else `/dev/shm` when it is writable with {@link RESULT_DIR_MIN_FREE} free.
 */
function defaultResultDir(): string | false {
  const env = process.env.MODELWATCH_RESULT_DIR;
  if (env !== undefined && env !== '') return env === '0' || env === 'off' ? false : resolve(env);
  const dir = '/dev/shm';
  try {
    accessSync(dir, fsConstants.W_OK);
    const fs = statfsSync(dir);
    return fs.bavail * fs.bsize >= RESULT_DIR_MIN_FREE ? dir : false;
  } catch {
    return false;
  }
}

/**
 * ClickHouse codes of a result file the engine could not create or write (`CANNOT_WRITE_TO_FILE_DESCRIPTOR`,
 * `CANNOT_OPEN_FILE`, `FILE_DOESNT_EXIST` for a missing directory, `NOT_ENOUGH_SPACE`, `FILE_ALREADY_EXISTS`):
 * the result directory is unusable, as opposed to an error of the statement itself.
 */
const RESULT_FILE_CODES: ReadonlySet<number> = new Set([75, 76, 107, 243, 504]);

/** A SQL string literal of a path (quotes and backslashes escaped). */
function sqlStringLiteral(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** After its deadline, how long the engine gets to stop a statement itself before the store kills it. */
const KILL_GRACE_MS = 1_000;
/** Deadline of the `KILL QUERY` statement itself. */
const KILL_TIMEOUT_MS = 5_000;
const QUERY_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** What one statement's call into the client gets. */
interface CallParams {
  query_id: string;
  abort_signal: AbortSignal;
  clickhouse_settings: StoreSettings;
}

/** State shared by a store and its {@link ClickHouseStore.with} views. */
interface Shared {
  client: ClickHouseClient;
  sideClient: () => ClickHouseClient;
  side: ClickHouseClient | undefined;
  kind: 'chdb' | 'http';
  limits: Record<StoreRole, RoleLimits>;
  rawInsert: StoreClient['rawInsert'];
  /** Where binary results go as files (resolved on first use), or `false`. */
  resultDir: string | false | undefined;
  /** Read buffers of result files, free for reuse. */
  buffers: Buffer[];
}

function mergeDefaults(a: StatementOptions, b: StatementOptions): StatementOptions {
  const out: StatementOptions = { ...a, ...b };
  if (a.signal !== undefined && b.signal !== undefined && a.signal !== b.signal)
    out.signal = AbortSignal.any([a.signal, b.signal]);
  else out.signal = b.signal ?? a.signal;
  if (a.deadline !== undefined && b.deadline !== undefined) out.deadline = Math.min(a.deadline, b.deadline);
  if (a.settings !== undefined || b.settings !== undefined) out.settings = { ...a.settings, ...b.settings };
  return out;
}

/** The `log_comment` that marks a statement, so it can be found in `system.processes` (chdb has no query ids of its own). */
export function queryMarker(queryId: string): string {
  return `modelwatch:${queryId}`;
}

/** Reads result file `file` whole into a free buffer of `free` (taken from it) or a new one. */
async function readResultFile(file: string, free: Buffer[]): Promise<{ buffer: Buffer; bytes: Uint8Array }> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    // A statement that wrote nothing leaves no file: an empty result.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { buffer: Buffer.alloc(0), bytes: new Uint8Array(0) };
    throw err;
  }
  try {
    return await readWholeFile(fh, (await fh.stat()).size, free);
  } finally {
    await fh.close();
  }
}

/** Reads `size` bytes of open file `fh` into a buffer taken from `free` (one large enough) or a new one. */
async function readWholeFile(
  fh: FileHandle,
  size: number,
  free: Buffer[],
): Promise<{ buffer: Buffer; bytes: Uint8Array }> {
  let at = free.findIndex((b) => b.length >= size);
  const buffer = at >= 0 ? free.splice(at, 1)[0]! : Buffer.allocUnsafeSlow(size);
  at = 0;
  while (at < size) {
    const { bytesRead } = await fh.read(buffer, at, size - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return { buffer, bytes: buffer.subarray(0, at) };
}

/** A result received as bytes, as a {@link BinaryResultFile}. */
function bytesResult(bytes: Uint8Array): BinaryResultFile {
  const read = (into: Uint8Array, position: number): number => {
    const part = bytes.subarray(Math.min(position, bytes.length), Math.min(position + into.length, bytes.length));
    into.set(part);
    return part.length;
  };
  return {
    size: bytes.length,
    read: (into, position) => Promise.resolve(read(into, position)),
    readSync: read,
    bytes: () => Promise.resolve(bytes),
  };
}

/** Returns `buffer` to the free list `free`: at most {@link RESULT_BUFFERS_KEPT}, the largest, none too large. */
function keepBuffer(free: Buffer[], buffer: Buffer): void {
  if (buffer.length === 0 || buffer.length > RESULT_BUFFER_MAX_KEPT) return;
  free.push(buffer);
  free.sort((a, b) => a.length - b.length);
  while (free.length > RESULT_BUFFERS_KEPT) free.shift();
}

/**
 * {@link Store} on ClickHouse (server or chdb) through `@clickhouse/client`. Every statement gets
 * `max_execution_time` (its deadline), `max_memory_usage`, a query id and an abort signal; when the
 * caller's signal fires, or the engine has not stopped {@link KILL_GRACE_MS} after the deadline, the call
 * rejects and the statement is killed on the server (`KILL QUERY`).
 */
export class ClickHouseStore implements Store {
  readonly kind: 'chdb' | 'http';
  private readonly shared: Shared;
  private readonly defaults: StatementOptions;

  constructor(sc: StoreClient, options: ClickHouseStoreOptions = {}) {
    this.shared = {
      client: sc.client,
      sideClient: sc.sideClient,
      side: undefined,
      kind: sc.kind,
      limits: resolveRoleLimits(options.limits),
      rawInsert: sc.rawInsert,
      resultDir: sc.kind === 'chdb' ? options.resultDir : false,
      buffers: [],
    };
    this.kind = sc.kind;
    this.defaults = {};
  }

  with(defaults: StatementOptions): ClickHouseStore {
    const view = Object.create(ClickHouseStore.prototype) as ClickHouseStore;
    Object.assign(view, { kind: this.kind, shared: this.shared, defaults: mergeDefaults(this.defaults, defaults) });
    return view;
  }

  /** The limits a role's statements run with. */
  limitsOf(role: StoreRole): RoleLimits {
    return this.shared.limits[role];
  }

  private async run<T>(
    label: string,
    options: StatementOptions,
    fn: (client: ClickHouseClient, p: CallParams) => Promise<T>,
  ): Promise<T> {
    const o = mergeDefaults(this.defaults, options);
    const op = o.label ?? label;
    const limits = this.shared.limits[o.role ?? 'api'];
    const queryId = o.queryId ?? randomUUID();
    if (!QUERY_ID.test(queryId)) throw new ModelwatchError(ErrorCodes.internal, `${op}: bad query id`);
    let budget = o.timeoutMs ?? limits.timeoutMs;
    if (o.deadline !== undefined) budget = Math.min(budget, o.deadline - Date.now());
    if (o.signal?.aborted === true)
      throw classifyStoreError(new Error('aborted before start'), { op, queryId, aborted: 'signal' });
    if (!(budget > 0))
      throw classifyStoreError(new Error('no time left before start'), { op, queryId, aborted: 'deadline' });
    const settings: StoreSettings = {
      ...o.settings,
      // Seconds with ms precision; the engine stops the statement itself (TIMEOUT_EXCEEDED) when it passes.
      max_execution_time: Math.ceil(budget) / 1000,
      max_memory_usage: o.maxMemoryBytes ?? limits.maxMemoryBytes,
      log_comment: queryMarker(queryId),
    };
    const ac = new AbortController();
    let aborted: 'deadline' | 'signal' | undefined;
    const timer = setTimeout(() => {
      aborted ??= 'deadline';
      ac.abort();
    }, budget + KILL_GRACE_MS);
    timer.unref();
    const onAbort = (): void => {
      aborted ??= 'signal';
      ac.abort();
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await fn(this.shared.client, {
        query_id: queryId,
        abort_signal: ac.signal,
        clickhouse_settings: settings,
      });
    } catch (err) {
      if (aborted !== undefined) await this.kill(queryId);
      else if (this.kind === 'chdb') await this.release();
      throw classifyStoreError(err, { op, queryId, aborted });
    } finally {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Kills a statement on the server. A server knows our query id; chdb has none of its own, so there the
   * statement is found by its `log_comment` marker, on a second connection, with the marker inlined (chdb
   * runs statements with bound parameters one at a time, so a bound `KILL` would wait for its victim).
   */
  private async kill(queryId: string): Promise<void> {
    const settings = { max_execution_time: KILL_TIMEOUT_MS / 1000, log_comment: 'modelwatch:kill' };
    try {
      if (this.kind === 'http') {
        await this.shared.client.command({
          query: 'KILL QUERY WHERE query_id = {id:String} ASYNC',
          query_params: { id: queryId },
          clickhouse_settings: settings,
        });
        return;
      }
      this.shared.side ??= this.shared.sideClient();
      // queryId matched QUERY_ID: no quote or backslash can reach the literal.
      await this.shared.side.command({
        query: `KILL QUERY WHERE Settings['log_comment'] = '${queryMarker(queryId)}' ASYNC`,
        clickhouse_settings: settings,
      });
      await this.release();
    } catch {
      // Best effort: the statement's own max_execution_time still stops it.
    }
  }

  /**
   * chdb keeps a connection's last statement in `system.processes` until the connection runs the next
   * one; a trivial statement releases a failed or killed one (a statement without bound parameters does
   * not queue behind others).
   */
  private async release(): Promise<void> {
    try {
      await this.shared.client.command({
        query: 'SELECT 1',
        clickhouse_settings: { log_comment: 'modelwatch:release' },
      });
    } catch {
      // Nothing to release on a closed engine.
    }
  }

  /** The client's `query_params`: the store's default parameters overlaid with the statement's, if any. */
  private queryParams(params: StatementOptions['params']): { query_params?: Record<string, unknown> } {
    if (params === undefined && this.defaults.params === undefined) return {};
    return { query_params: { ...this.defaults.params, ...params } };
  }

  query<T = Record<string, unknown>>(sql: string, options: StatementOptions = {}): Promise<T[]> {
    return this.run('query', options, async (client, p) => {
      const rs = await client.query({
        query: sql,
        format: 'JSONEachRow',
        ...this.queryParams(options.params),
        ...p,
      });
      return rs.json<T>();
    });
  }

  queryBinary(sql: string, options: BinaryQueryOptions = {}): Promise<Uint8Array> {
    const { format = 'Native', ...rest } = options;
    return this.run('query', rest, async (client, p) => {
      const rs = await client.exec({
        query: `${sql}\nFORMAT ${format}`,
        ...this.queryParams(rest.params),
        ...p,
      });
      const chunks: Buffer[] = [];
      for await (const chunk of rs.stream as AsyncIterable<Buffer>) chunks.push(chunk);
      return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    });
  }

  /**
   * Runs a read statement and hands its result, in a binary format, to `consume`, which must be done with the
   * bytes when it returns (they are a view of a buffer reused by the next statement). On the embedded engine
   * the result is written to a file in {@link ClickHouseStoreOptions.resultDir} and read back into a reused
   * buffer (the file is deleted on every path); otherwise, or when the engine cannot write the file, it is
   * received as by {@link queryBinary}. Same deadline, memory cap and cancellation as every statement.
   */
  async queryBinaryView<T>(sql: string, options: BinaryQueryOptions, consume: (bytes: Uint8Array) => T): Promise<T> {
    return this.viaResultFile(
      sql,
      options,
      async (file) => {
        const buffer = await readResultFile(file, this.shared.buffers);
        try {
          return consume(buffer.bytes);
        } finally {
          keepBuffer(this.shared.buffers, buffer.buffer);
        }
      },
      consume,
    );
  }

  /**
   * Runs a read statement and hands its result, in a binary format, to `consume` as a {@link BinaryResultFile}:
   * on the embedded engine the result file itself (open until `consume` settles, then deleted), which `consume`
   * reads where it wants; otherwise, or when the engine cannot write the file, the bytes received as by
   * {@link queryBinary}. Same deadline, memory cap and cancellation as every statement.
   */
  async queryBinaryFile<T>(
    sql: string,
    options: BinaryQueryOptions,
    consume: (file: BinaryResultFile) => Promise<T>,
  ): Promise<T> {
    const shared = this.shared;
    return this.viaResultFile(
      sql,
      options,
      async (file) => {
        let fh;
        try {
          fh = await open(file, 'r');
        } catch (err) {
          // A statement that wrote nothing leaves no file: an empty result.
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return consume(bytesResult(new Uint8Array(0)));
          throw err;
        }
        const kept: Buffer[] = [];
        try {
          const size = (await fh.stat()).size;
          const handle = fh;
          return await consume({
            size,
            read: async (into, position) =>
              (await handle.read(into, 0, Math.min(into.length, Math.max(0, size - position)), position)).bytesRead,
            readSync: (into, position) =>
              readSync(handle.fd, into, 0, Math.min(into.length, Math.max(0, size - position)), position),
            bytes: async () => {
              const buffer = await readWholeFile(handle, size, shared.buffers);
              kept.push(buffer.buffer);
              return buffer.bytes;
            },
          });
        } finally {
          for (const b of kept) keepBuffer(shared.buffers, b);
          await fh.close();
        }
      },
      (bytes) => consume(bytesResult(bytes)),
    );
  }

  /**
   * The embedded engine's result-file path of {@link queryBinaryView} and {@link queryBinaryFile}: the statement
   * writes its result to a file in the result directory, handed to `onFile` (deleted on every path after);
   * without a result directory, or when the engine cannot write the file, the bytes go to `onBytes`.
   */
  private async viaResultFile<T>(
    sql: string,
    options: BinaryQueryOptions,
    onFile: (file: string) => Promise<T>,
    onBytes: (bytes: Uint8Array) => T | Promise<T>,
  ): Promise<T> {
    const shared = this.shared;
    if (shared.resultDir === undefined) shared.resultDir = defaultResultDir();
    const dir = shared.resultDir;
    if (dir === false) return onBytes(await this.queryBinary(sql, options));
    const { format = 'Native', ...rest } = options;
    const file = join(dir, `modelwatch-result-${randomUUID()}.out`);
    try {
      try {
        await this.run('query', rest, async (client, p) => {
          await client.command({
            query: `${sql}\nINTO OUTFILE ${sqlStringLiteral(file)} FORMAT ${format}`,
            ...this.queryParams(rest.params),
            ...p,
          });
        });
      } catch (err) {
        const code = storeErrorCodes(err).clickhouseCode;
        if (code === undefined || !RESULT_FILE_CODES.has(code)) throw err;
        shared.resultDir = false;
        return await onBytes(await this.queryBinary(sql, options));
      }
      return await onFile(file);
    } finally {
      await unlink(file).catch(() => undefined);
    }
  }

  command(sql: string, options: StatementOptions = {}): Promise<void> {
    return this.run('command', options, async (client, p) => {
      await client.command({
        query: sql,
        ...this.queryParams(options.params),
        ...p,
      });
    });
  }

  async insert(table: string, values: readonly object[], options: InsertOptions = {}): Promise<void> {
    if (values.length === 0) return;
    const { dedupToken, ...rest } = options;
    await this.run(`insert into ${table}`, rest, async (client, p) => {
      await client.insert({
        table,
        values,
        format: 'JSONEachRow',
        ...p,
        clickhouse_settings: {
          ...p.clickhouse_settings,
          // Always set the token, '' meaning none: chdb's connection applies settings as session-wide `SET`,
          // so a token left from an earlier insert would otherwise stick and silently drop later inserts.
          insert_deduplication_token: dedupToken !== undefined ? `${table}:${dedupToken}` : '',
        },
      });
    });
  }

  async insertEncoded(table: string, body: Buffer, options: EncodedInsertOptions): Promise<void> {
    if (body.length === 0) return;
    const { dedupToken, format, columns, ...rest } = options;
    await this.run(`insert into ${table}`, rest, async (client, p) => {
      const settings: StoreSettings = {
        ...p.clickhouse_settings,
        // As in insert(): always set, '' meaning none.
        insert_deduplication_token: dedupToken !== undefined ? `${table}:${dedupToken}` : '',
      };
      const raw = this.shared.rawInsert;
      if (raw !== undefined) {
        // Settings go into the statement's own SETTINGS clause: nothing sticks to the session.
        await raw({
          table,
          values: body,
          format,
          ...(columns !== undefined ? { columns } : {}),
          settings,
          signal: p.abort_signal,
        });
        return;
      }
      // A server: the body as a byte stream after `INSERT … FORMAT` (the client's insert() takes JSON formats
      // only as objects). Table and column names are ours, never user input.
      const cols = columns !== undefined ? ` (${columns.join(', ')})` : '';
      const res = await client.exec({
        query: `INSERT INTO ${table}${cols} FORMAT ${format}`,
        values: Readable.from([body], { objectMode: false }),
        ...p,
        clickhouse_settings: settings,
      });
      // Drain the response: an error written after the headers surfaces here.
      for await (const chunk of res.stream) void chunk;
    });
  }

  insertPredictions(rows: PredictionRow[], options?: InsertOptions): Promise<void> {
    return this.insert(
      Tables.predictions,
      // Explicit literal (not a spread): one object shape for every row, cheaper to build and to stringify.
      rows.map((r) => ({
        model: r.model,
        version: r.version,
        ts: toChTime(r.ts),
        event_id: r.event_id,
        request_id: r.request_id,
        row: r.row,
        features_num: encodeFloatMap(r.features_num),
        features_cat: r.features_cat,
        outputs_num: encodeFloatMap(r.outputs_num),
        outputs_cat: r.outputs_cat,
      })),
      options,
    );
  }

  insertRequests(rows: RequestRow[], options?: InsertOptions): Promise<void> {
    return this.insert(
      Tables.requests,
      rows.map((r) => ({ ...r, ts: toChTime(r.ts), latency_ms: Number.isFinite(r.latency_ms) ? r.latency_ms : 0 })),
      options,
    );
  }

  insertLabels(rows: LabelRow[], options?: InsertOptions): Promise<void> {
    return this.insert(Tables.labels, rows, options);
  }

  insertQuarantine(rows: QuarantineRow[], options?: InsertOptions): Promise<void> {
    return this.insert(Tables.quarantine, rows, options);
  }

  async existingEventIds(eventIds: string[]): Promise<Set<string>> {
    if (eventIds.length === 0) return new Set();
    const rows = await this.query<{ event_id: string }>(
      `SELECT DISTINCT event_id FROM ${Tables.requests} WHERE event_id IN {ids:Array(String)}`,
      { params: { ids: eventIds }, label: 'dedupe lookup' },
    );
    return new Set(rows.map((r) => r.event_id));
  }

  async ping(): Promise<boolean> {
    try {
      await this.query('SELECT 1', { label: 'ping', timeoutMs: 5_000 });
      return true;
    } catch {
      return false;
    }
  }

  migrate(): Promise<number[]> {
    return migrate(this);
  }

  appliedVersions(): Promise<number[]> {
    return appliedVersions(this);
  }

  async close(): Promise<void> {
    const { client, side } = this.shared;
    this.shared.side = undefined;
    if (side !== undefined && side !== client) await side.close();
    await client.close();
  }
}
