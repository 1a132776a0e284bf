// Direction-only: where a 1-row call's CPU goes, per table and per stage, compiled code (dist/).
// 1. The ingest path as `modelwatch up` makes it (in-process bus, startIngest), with every store statement
//    counted: inserts per table, lines per insert body, wall ms per statement.
// 2. Raw inserts of each table's rows alone, in 10,000-row blocks, CPU µs per row (JS thread and the rest),
//    into the real table and into scratch copies (no materialized views; other payload codecs).
// Usage: npm run build && npx tsx bench/ingest/split.ts [calls] [parts: ingest,raw]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { shipped } from '../shipped.js';
import { call } from './calls.js';

const { encodeCapture, InProcessBus } = await shipped<typeof import('../../src/bus/index.js')>('bus/index.js');
const { silentLogger } = await shipped<typeof import('../../src/common/index.js')>('common/index.js');
const { configSchema } = await shipped<typeof import('../../src/config/index.js')>('config/index.js');
const ingest = await shipped<typeof import('../../src/ingest/index.js')>('ingest/index.js');
const { decodeCall } = await shipped<typeof import('../../src/protocol/index.js')>('protocol/index.js');
const { createStore, Tables } = await shipped<typeof import('../../src/store/index.js')>('store/index.js');
const { inProcessBusOptions } = await shipped<typeof import('../../src/runtime/index.js')>('runtime/index.js');
type Store = import('../../src/store/index.js').Store;

const N = Number(process.argv[2] ?? 65_536);
const PARTS = (process.argv[3] ?? 'ingest,raw').split(',');

function mainCpuUs(): number {
  const s = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
}
function cpu(): { main: number; total: number } {
  const u = process.cpuUsage();
  return { main: mainCpuUs(), total: u.user + u.system };
}
function since(c0: { main: number; total: number }, n: number): string {
  const c = cpu();
  const main = (c.main - c0.main) / n;
  const other = (c.total - c0.total - (c.main - c0.main)) / n;
  return `JS ${main.toFixed(1)} + other ${other.toFixed(1)} = ${(main + other).toFixed(1)} µs/row`;
}

const dir = mkdtempSync(join(tmpdir(), 'mw-split-'));
const store = createStore({ url: `chdb:${dir}` });
await store.migrate();
const t0 = Date.UTC(2026, 0, 1);

if (PARTS.includes('ingest')) {
  const stats = new Map<string, { n: number; lines: number; bytes: number; ms: number; sizes: number[] }>();
  const note = (k: string, lines: number, bytes: number, ms: number): void => {
    const s = stats.get(k) ?? { n: 0, lines: 0, bytes: 0, ms: 0, sizes: [] };
    s.n++;
    s.lines += lines;
    s.bytes += bytes;
    s.ms += ms;
    s.sizes.push(lines);
    stats.set(k, s);
  };
  // The real store, with each insert body and query timed and counted (also through the views `with()` returns).
  const observed = (target: Store): Store =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value: unknown = Reflect.get(t, prop, receiver);
        if (prop === 'with') return (d: Parameters<Store['with']>[0]) => observed(t.with(d));
        if (prop === 'insertEncoded') {
          return async (table: string, body: Buffer, o: Parameters<Store['insertEncoded']>[2]) => {
            const w = performance.now();
            await t.insertEncoded(table, body, o);
            let lines = 0;
            for (let i = 0; i < body.length; i++) if (body[i] === 10) lines++;
            note(table, lines, body.length, performance.now() - w);
          };
        }
        if (prop === 'query') {
          return async (sql: string, o?: Parameters<Store['query']>[1]) => {
            const w = performance.now();
            const r = await t.query(sql, o);
            note(`query ${o?.label ?? sql.slice(0, 30)}`, r.length, 0, performance.now() - w);
            return r;
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      },
    });
  const config = configSchema.parse({ logLevel: 'silent' });
  const bus = new InProcessBus(inProcessBusOptions(config));
  const registry = new Registry();
  const role = await ingest.startIngest({
    config,
    store: observed(store),
    bus,
    logger: silentLogger,
    metrics: registry,
  });
  await role.ready;
  const messages = Array.from({ length: N }, (_, i) => encodeCapture(call('ing', i, 1, t0)));
  const c0 = cpu();
  const w0 = performance.now();
  for (let k = 0; k < N;) {
    try {
      await bus.publish(messages.slice(k, k + 256));
      k += 256;
    } catch {
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  const rowsInserted = async (): Promise<number> =>
    (await registry.getSingleMetric('modelwatch_ingest_rows_inserted_total')?.get())?.values.reduce(
      (a, x) => a + x.value,
      0,
    ) ?? 0;
  while ((await rowsInserted()) < N) await new Promise((r) => setTimeout(r, 2));
  const wall = (performance.now() - w0) / 1000;
  console.log(`ingest ${N} 1-row calls: ${wall.toFixed(2)} s (${Math.round(N / wall)} rows/s); ${since(c0, N)}`);
  for (const [k, s] of stats) {
    const sorted = [...s.sizes].sort((a, b) => a - b);
    console.log(
      `  ${k}: ${s.n} statements, lines per statement min/median/max ${sorted[0]}/${sorted[sorted.length >> 1]}/${sorted[sorted.length - 1]}, ${(s.bytes / Math.max(1, s.lines)).toFixed(0)} B/line, wall ${s.ms.toFixed(0)} ms (${((s.ms * 1000) / N).toFixed(1)} µs per call)`,
    );
  }
  await role.stop();
}

if (PARTS.includes('raw')) {
  const {
    buildCallRecords,
    predictionLine,
    requestLine,
    payloadLine,
    payloadRowOf,
    PredictionColumns,
    RequestColumns,
    PayloadColumns,
  } = ingest;
  const { defaultModelSchema } = await shipped<typeof import('../../src/config/index.js')>('config/index.js');
  // Scratch copies: the same columns without the materialized views, and the payload body under other codecs.
  const copies: [string, string][] = [
    ['raw_pred_nomv', `CREATE TABLE raw_pred_nomv AS ${Tables.predictions}`],
    ['raw_req_nomv', `CREATE TABLE raw_req_nomv AS ${Tables.requests}`],
    ['raw_pay_zstd3', `CREATE TABLE raw_pay_zstd3 AS mw_payloads`],
    ['raw_pay_lz4', `CREATE TABLE raw_pay_lz4 AS mw_payloads`],
    ['raw_pay_zstd1', `CREATE TABLE raw_pay_zstd1 AS mw_payloads`],
  ];
  for (const [, sql] of copies) await store.command(sql);
  await store.command(`ALTER TABLE raw_pay_lz4 MODIFY COLUMN body String CODEC(LZ4)`);
  await store.command(`ALTER TABLE raw_pay_zstd1 MODIFY COLUMN body String CODEC(ZSTD(1))`);
  const run = async (
    label: string,
    table: string,
    model: string,
    columns: readonly string[],
    kind: 'p' | 'r' | 'y',
  ) => {
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      const c = call(model, i, 1, t0 + label.length * 1e7);
      const rec = buildCallRecords(c, 'x', c.request.body, (cc) => decodeCall(cc, defaultModelSchema));
      if (kind === 'p') for (const p of rec.predictions) lines.push(predictionLine(p));
      else if (kind === 'r') lines.push(requestLine(rec.request));
      else lines.push(payloadLine(payloadRowOf(c, model, '1')!));
    }
    const bodies: Buffer[] = [];
    for (let k = 0; k < lines.length; k += 10_000)
      bodies.push(Buffer.from(lines.slice(k, k + 10_000).join('\n') + '\n'));
    const c0 = cpu();
    const w0 = performance.now();
    for (const b of bodies)
      await store.insertEncoded(table, b, { role: 'ingest', format: 'JSONCompactEachRow', columns });
    const wall = (performance.now() - w0) / 1000;
    console.log(
      `raw ${label} (${table}, ${bodies.reduce((a, b) => a + b.length, 0) / lines.length} B/line): ${Math.round(lines.length / wall)} rows/s, insert only ${since(c0, lines.length)}`,
    );
  };
  for (let rep = 0; rep < 2; rep++) {
    await run(`predictions${rep}`, Tables.predictions, `p${rep}`, PredictionColumns, 'p');
    await run(`predictions no MV${rep}`, 'raw_pred_nomv', `p${rep}`, PredictionColumns, 'p');
    await run(`requests${rep}`, Tables.requests, `r${rep}`, RequestColumns, 'r');
    await run(`requests no MV${rep}`, 'raw_req_nomv', `r${rep}`, RequestColumns, 'r');
    await run(`payloads ZSTD(3)${rep}`, 'mw_payloads', `y${rep}`, PayloadColumns, 'y');
    await run(`payloads copy ZSTD(3)${rep}`, 'raw_pay_zstd3', `y${rep}`, PayloadColumns, 'y');
    await run(`payloads ZSTD(1)${rep}`, 'raw_pay_zstd1', `y${rep}`, PayloadColumns, 'y');
    await run(`payloads LZ4${rep}`, 'raw_pay_lz4', `y${rep}`, PayloadColumns, 'y');
  }
  for (const t of ['mw_payloads', 'raw_pay_zstd3', 'raw_pay_zstd1', 'raw_pay_lz4']) {
    const r = await store.query(
      `SELECT table, sum(data_compressed_bytes) AS c, sum(data_uncompressed_bytes) AS u FROM system.columns WHERE database = currentDatabase() AND table = {t:String} AND name = 'body' GROUP BY table`,
      { params: { t } },
    );
    console.log(`  ${t} body bytes: ${JSON.stringify(r)}`);
  }
}

await store.close();
rmSync(dir, { recursive: true, force: true });
console.log(
  `load ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
