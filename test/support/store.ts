import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClickHouseStore, createStoreClient } from '../../src/store/index.js';

/**
 * Opens an embedded (chdb) store in a fresh temp dir with migrations applied. chdb allows one engine
 * per process, so call this once per test file (vitest runs each file in its own fork).
 */
export async function openTestStore(): Promise<{ store: ClickHouseStore; dir: string; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-chdb-'));
  const store = new ClickHouseStore(createStoreClient({ url: `chdb:${dir}` }));
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
