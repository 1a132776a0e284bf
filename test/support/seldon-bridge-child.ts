// One Seldon bridge in a process of its own, so a test can end it the way a crash does (SIGKILL: no
// stop(), no flush, no commit). Run as `node --import tsx seldon-bridge-child.ts '<json>'` with
// { brokers, prefix, groupId, captureTopic, pairTtlMs, commitIntervalMs, sessionTimeoutMs }.
// Prints `ready` once every consumer joined, then `pending <n>` whenever the number of waiting halves
// changes.
import { Registry } from 'prom-client';
import { KafkaBus } from '../../src/bus/index.js';
import { silentLogger } from '../../src/common/logger.js';
import { configSchema } from '../../src/config/schema.js';
import { startSeldonBridge } from '../../src/ingest/seldon.js';
import type { RuntimeContext } from '../../src/runtime/context.js';
import type { Store } from '../../src/store/store.js';

interface ChildOptions {
  brokers: string[];
  prefix: string;
  groupId: string;
  captureTopic: string;
  pairTtlMs: number;
  commitIntervalMs: number;
  sessionTimeoutMs: number;
}

const o = JSON.parse(process.argv[2] ?? '{}') as ChildOptions;
const bus = new KafkaBus({ brokers: o.brokers, topic: o.captureTopic });
const ctx: RuntimeContext = {
  config: configSchema.parse({ kafka: { brokers: o.brokers, seldonTopics: [o.prefix] } }),
  // The bridge never touches the store.
  store: undefined as unknown as Store,
  bus,
  logger: silentLogger,
  metrics: new Registry(),
};
const bridge = await startSeldonBridge(ctx, {
  groupId: o.groupId,
  pairTtlMs: o.pairTtlMs,
  commitIntervalMs: o.commitIntervalMs,
  sessionTimeoutMs: o.sessionTimeoutMs,
  sweepIntervalMs: 50,
});
await bridge.ready;
process.stdout.write('ready\n');
let last = -1;
setInterval(() => {
  if (bridge.pending !== last) {
    last = bridge.pending;
    process.stdout.write(`pending ${last}\n`);
  }
}, 50);
