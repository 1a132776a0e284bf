import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../src/bus/index.js';
import { roles } from '../src/cli/roles.js';
import { silentLogger } from '../src/common/index.js';
import { configSchema, type ConfigInput } from '../src/config/index.js';
import type { RuntimeContext } from '../src/runtime/index.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { openTestStore } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});
afterAll(async () => cleanup());

function ctxFor(input: ConfigInput): RuntimeContext {
  return {
    config: configSchema.parse(input),
    store,
    bus: new InProcessBus(),
    logger: silentLogger,
    metrics: new Registry(),
  };
}

describe('ingest role', () => {
  it('starts and stops plain ingest when no Seldon topics are configured', async () => {
    const role = await roles.ingest!(ctxFor({}));
    expect(role.name).toBe('ingest');
    await role.stop();
  });

  it('fails at start-up, naming kafka.brokers, when Seldon topics are configured without brokers', async () => {
    await expect(
      roles.ingest!(ctxFor({ kafka: { seldonTopics: ['seldon.default.model.iris'] } })),
    ).rejects.toMatchObject({
      code: 'config_invalid',
      field: 'kafka.brokers',
    });
  });
});
