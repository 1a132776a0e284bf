import type { Config } from '../config/schema.js';
import { createStoreClient } from './client.js';
import { ClickHouseStore } from './store.js';

/** Opens the configured store and applies migrations. */
export async function openStore(config: Pick<Config, 'clickhouse'>): Promise<ClickHouseStore> {
  const store = new ClickHouseStore(
    createStoreClient({
      url: config.clickhouse.url,
      database: config.clickhouse.database,
      username: config.clickhouse.username,
      password: config.clickhouse.password,
      requestTimeoutMs: config.clickhouse.requestTimeoutMs,
    }),
  );
  await store.migrate();
  return store;
}
