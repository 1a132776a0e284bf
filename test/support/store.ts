import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore, type ClickHouseStore, type CreateStoreOptions, type SqlPort } from '../../src/store/index.js';

/**
 * Opens an embedded (chdb) store in a fresh temp dir with migrations applied. chdb allows one engine
 * per process, so call this once per test file (vitest runs each file in its own fork).
 */
export async function openTestStore(
  options: Omit<CreateStoreOptions, 'url'> = {},
): Promise<{ store: ClickHouseStore; dir: string; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-chdb-'));
  const store = createStore({ url: `chdb:${dir}`, ...options });
  await store.migrate();
  return {
    store,
    dir,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A read statement in the shape tests wrote before the store port (`{ query, query_params }` then
 * `.json()`), run through the port's {@link SqlPort.query}.
 */
export function selectRows(
  store: SqlPort,
  q: { query: string; query_params?: Record<string, unknown>; format?: 'JSONEachRow' },
): {
  json: <T = unknown>() => Promise<T[]>;
} {
  const rows = store.query(q.query, { params: q.query_params });
  return { json: <T>() => rows as Promise<T[]> };
}
