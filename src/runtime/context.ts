import type { Registry } from 'prom-client';
import type { Bus } from '../bus/types.js';
import type { Logger } from '../common/logger.js';
import type { Config } from '../config/schema.js';
import type { Store } from '../store/store.js';

/** What every role (sidecar, ingest, detect, api) is started with. One per process. */
export interface RuntimeContext {
  config: Config;
  store: Store;
  bus: Bus;
  logger: Logger;
  /** The process's Prometheus registry; every module registers its metrics here (never the global one). */
  metrics: Registry;
}

/** A started role. `stop()` follows the shutdown order: stop intake, flush, commit, close. */
export interface RunningRole {
  name: string;
  /** URLs the role serves, printed by `modelwatch up`. */
  urls: string[];
  stop(): Promise<void>;
}
