export { createStoreClient } from './client.js';
export type { StoreClient, StoreClientOptions } from './client.js';
export { migrate, appliedVersions, migrations, Tables } from './migrations.js';
export type { Migration } from './migrations.js';
export { ClickHouseStore, toChTime } from './store.js';
export type { Store, InsertOptions } from './store.js';
export type { PredictionRow, RequestRow, LabelRow, QuarantineRow } from './rows.js';
export { openStore } from './open.js';
