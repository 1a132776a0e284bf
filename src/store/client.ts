import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createRequire } from 'node:module';
import type { RawInsertParams } from 'chdb';
import { ErrorCodes, ModelwatchError } from '../common/errors.js';
import { writeEngineConfig, type EmbeddedEngineConfig } from './engine-config.js';

// chdb's native library (~140 MB resident once loaded) is loaded only by a process that opens an embedded
// store: `modelwatch sidecar` and other store-less roles import this module but never call it.
const requireLazy = createRequire(import.meta.url);
type ChdbConnectionModule = typeof import('chdb/connection');

// Same JSON number shapes from chdb and a server: 64-bit integers as JSON numbers (counts fit in 2^53).
const jsonSettings = { output_format_json_quote_64bit_integers: 0 } as const;

/** Options of {@link createStoreClient}. */
export interface StoreClientOptions {
  /** `chdb:PATH` for embedded ClickHouse, or an `http(s)://` server URL. @default 'chdb:./.modelwatch/chdb' */
  url: string;
  /** Database name. @default 'default' */
  database?: string;
  /** Server user (HTTP only). */
  username?: string | undefined;
  /** Server password (HTTP only). Never logged. */
  password?: string | undefined;
  /**
   * Socket timeout of the client. Statements have their own deadlines (role limits), which the store keeps
   * below this one. @default 30000
   */
  requestTimeoutMs?: number;
  /**
   * Server configuration of an embedded engine on disk (`chdb:PATH`; not `chdb::memory:`), loaded when this
   * process first opens the data directory. @default `DefaultEmbeddedEngineConfig`
   */
  engine?: EmbeddedEngineConfig | undefined;
}

/** A ClickHouse client plus what kind of engine it talks to (internal to `src/store`). */
export interface StoreClient {
  client: ClickHouseClient;
  /**
   * A second client on the same engine, for `KILL QUERY` while the first is busy. chdb runs statements
   * with bound parameters one at a time per process, so the kill must not queue behind the statement it kills.
   */
  sideClient: () => ClickHouseClient;
  /** `chdb` (in-process) or `http` (server). */
  kind: 'chdb' | 'http';
  /**
   * chdb only: the engine's raw insert on the main connection. The body stays bytes (handed to the engine
   * zero-copy) and settings go into the statement's own `SETTINGS` clause; the client's insert path would
   * turn the body into a JavaScript string first and apply settings session-wide.
   */
  rawInsert?: ((params: RawInsertParams) => Promise<unknown>) | undefined;
  database: string;
  /** The URL with any password removed, safe to print. */
  displayUrl: string;
}

/**
 * Creates the one ClickHouse client of this process, for a server (`http(s)://`) or embedded chdb
 * (`chdb:PATH`). Both go through `@clickhouse/client`, so every query is written once.
 * chdb binds a single data directory per process: open one store per process.
 */
export function createStoreClient(options: StoreClientOptions): StoreClient {
  const database = options.database ?? 'default';
  const timeout = options.requestTimeoutMs ?? 30_000;
  // Statements may run for minutes: progress headers keep idle load balancers from cutting the socket, at
  // most ~40 of them per statement (Node's header size limit). chdb drops these HTTP-only settings.
  const sharedSettings = {
    ...jsonSettings,
    send_progress_in_http_headers: 1,
    http_headers_progress_interval_ms: String(Math.max(25_000, Math.ceil(timeout / 40))),
  } as const;
  if (options.url.startsWith('chdb:')) {
    const rawPath = options.url.slice('chdb:'.length);
    const path = rawPath === '' || rawPath === ':memory:' ? ':memory:' : resolve(rawPath);
    if (path !== ':memory:') mkdirSync(path, { recursive: true });
    const { createChdbConnection } = requireLazy('chdb/connection') as ChdbConnectionModule;
    // The first connection to a data directory starts the engine with its server configuration; later ones at
    // the same path share the running engine. A session carrying the configuration is opened first and closed
    // once the main connection holds the engine (a no-op when this process already runs it).
    const { Session } = requireLazy('chdb') as {
      Session: new (path: string, options: { connectionArgs: string[] }) => { close(): void };
    };
    const configured =
      path !== ':memory:' ? new Session(path, { connectionArgs: writeEngineConfig(path, options.engine) }) : undefined;
    const make = (connection = createChdbConnection({ path })): ClickHouseClient =>
      createClient({
        // chdb types its connection against @clickhouse/client-common while the client bundles its own copy of
        // the same interface; the shapes are identical at runtime (chdb's documented recipe).
        connection: connection as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'],
        database,
        request_timeout: timeout,
        clickhouse_settings: sharedSettings,
      });
    const main = createChdbConnection({ path });
    configured?.close();
    return {
      client: make(main),
      sideClient: () => make(),
      kind: 'chdb',
      database,
      displayUrl: `chdb:${path}`,
      rawInsert: (params) => main.chdb.rawInsert(params),
    };
  }
  let url: URL;
  try {
    url = new URL(options.url);
  } catch (err) {
    throw new ModelwatchError(ErrorCodes.configInvalid, `clickhouse.url: not a URL or chdb:PATH`, {
      field: 'clickhouse.url',
      cause: err,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ModelwatchError(ErrorCodes.configInvalid, `clickhouse.url: expected http(s):// or chdb:PATH`, {
      field: 'clickhouse.url',
    });
  }
  const username = options.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password = options.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
  url.username = '';
  url.password = '';
  const client = createClient({
    url: url.toString(),
    database,
    request_timeout: timeout,
    clickhouse_settings: sharedSettings,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
  });
  return { client, sideClient: () => client, kind: 'http', database, displayUrl: url.toString() };
}
