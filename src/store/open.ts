import type { Config } from '../config/schema.js';
import { createStoreClient } from './client.js';
import type { EmbeddedEngineConfig } from './engine-config.js';
import { migrate, migrations } from './migrations.js';
import { StoreRoles, resolveRoleLimits, type RoleLimits, type StoreRole } from './port.js';
import { ClickHouseStore } from './store.js';

/** Options of {@link createStore}. */
export interface CreateStoreOptions {
  /** `chdb:PATH` (`chdb::memory:` for a throw-away engine) or an `http(s)://` server URL. */
  url: string;
  /** @default 'default' */
  database?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** Socket timeout of the client; raised to stay above every role's deadline. @default 30000 */
  requestTimeoutMs?: number | undefined;
  /** Deadline and memory cap per role. @default `DefaultRoleLimits` */
  limits?: Partial<Record<StoreRole, RoleLimits>> | undefined;
  /** Server configuration of an embedded engine on disk. @default `DefaultEmbeddedEngineConfig` */
  engine?: EmbeddedEngineConfig | undefined;
}

/** Margin between the longest statement deadline and the client's socket timeout. */
const SOCKET_MARGIN_MS = 5_000;

/** Creates a store on a ClickHouse server or a chdb engine, without touching its schema. */
export function createStore(options: CreateStoreOptions): ClickHouseStore {
  const limits = resolveRoleLimits(options.limits);
  const longest = Math.max(...StoreRoles.map((r) => limits[r].timeoutMs));
  const sc = createStoreClient({
    url: options.url,
    ...(options.database !== undefined ? { database: options.database } : {}),
    username: options.username,
    password: options.password,
    // The client's own timeout raises an error without a code; statements must hit their deadline first.
    requestTimeoutMs: Math.max(options.requestTimeoutMs ?? 30_000, longest + SOCKET_MARGIN_MS),
    engine: options.engine,
  });
  return new ClickHouseStore(sc, { limits });
}

/** Opens the configured store and applies migrations. */
export async function openStore(config: Pick<Config, 'clickhouse'>): Promise<ClickHouseStore> {
  const c = config.clickhouse;
  const store = createStore({
    url: c.url,
    database: c.database,
    username: c.username,
    password: c.password,
    requestTimeoutMs: c.requestTimeoutMs,
    limits: c.roles,
  });
  await migrate(store, migrations, { cluster: c.cluster });
  return store;
}
