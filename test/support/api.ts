import { createServer } from 'node:net';
import { Registry } from 'prom-client';
import { InProcessBus } from '../../src/bus/index.js';
import { silentLogger } from '../../src/common/index.js';
import { loadConfig } from '../../src/config/index.js';
import { registerDefaultMetrics, type RuntimeContext } from '../../src/runtime/index.js';
import type { Store } from '../../src/store/index.js';

/** A runtime context over `store` with a config built from `overrides` (no file, no env), like createRuntime's. */
export function apiTestContext(store: Store, overrides: Record<string, unknown> = {}): RuntimeContext {
  const config = loadConfig({ env: {}, overrides: { 'api.listen': '127.0.0.1:0', ...overrides } });
  const metrics = new Registry();
  // Same registry contents as createRuntime, so /metrics is linted as it is served.
  registerDefaultMetrics(metrics);
  return { config, store, bus: new InProcessBus(), logger: silentLogger, metrics };
}

/** A loopback TCP port that was free a moment ago (for child processes that must be told their port). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
