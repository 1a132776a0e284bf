// `npm run bench -- ingest`: rows/s through the whole ingest path (in-process bus → capture decode →
// V2 decode → dedupe lookup → ClickHouse inserts of predictions, payloads and requests, embedded chdb)
// versus a raw insert of the same pre-built prediction rows into the same table, in the same run, in every
// insert format the store accepts (the fastest is the baseline); 1, 64 and 1024 rows per request, 20 FP32
// features. CPU per row (JavaScript thread vs the engine's threads), event-loop delay during ingest and the
// 1-minute load average are recorded. Then a 1M-call backlog through the byte-bounded bus with a producer that
// backs off on `bus_full`, sampling RSS (V8 heap vs the rest), to show memory stays bounded.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import type { BusMessage, CapturedCall, InProcessBus as InProcessBusType } from '../src/bus/index.js';
import type { ClickHouseStore as ClickHouseStoreType } from '../src/store/index.js';
import { shipped } from './shipped.js';
import { FEATURES, call, value } from './ingest/calls.js';
import { sampleEngineMemory } from './ingest/engine-memory.js';
import { formatSplit, residentSplit, type ResidentSplit } from './ingest/smaps.js';

// The code under test, compiled (dist/; see bench/shipped.ts).
const { encodeCapture, InProcessBus } = await shipped<typeof import('../src/bus/index.js')>('bus/index.js');
const { isModelwatchError, silentLogger } = await shipped<typeof import('../src/common/index.js')>('common/index.js');
const { configSchema, defaultModelSchema } = await shipped<typeof import('../src/config/index.js')>('config/index.js');
const {
  startIngest,
  predictionLine,
  PredictionColumns,
  requestLine,
  RequestColumns,
  payloadLine,
  PayloadColumns,
  payloadRowOf,
} = await shipped<typeof import('../src/ingest/index.js')>('ingest/index.js');
const { decodeCall } = await shipped<typeof import('../src/protocol/index.js')>('protocol/index.js');
const { createStore, Tables, DefaultEmbeddedEngineConfig } =
  await shipped<typeof import('../src/store/index.js')>('store/index.js');
const { inProcessBusOptions } = await shipped<typeof import('../src/runtime/index.js')>('runtime/index.js');
type EncodedInsertFormat = import('../src/store/index.js').EncodedInsertFormat;
type PredictionRow = import('../src/store/index.js').PredictionRow;
type RequestRow = import('../src/store/index.js').RequestRow;

const root = join(import.meta.dirname, '..');
/** Rows per case (the number of requests is rows / rowsPerRequest). */
const ROWS_PER_CASE = Number(process.env.INGEST_BENCH_ROWS ?? 65_536);
const BACKLOG_RECORDS = Number(process.env.INGEST_BENCH_BACKLOG ?? 1_000_000);
/**
 * Rows per request of the throughput cases to run, comma-separated (`INGEST_BENCH_CASES=` runs none, e.g. for
 * the backlog alone). A partial run prints its results and writes no result files. @default 1,64,1024
 */
const CASES = (process.env.INGEST_BENCH_CASES ?? '1,64,1024')
  .split(',')
  .filter((c) => c.trim() !== '')
  .map(Number);
/** The environment variables that size the allocator's arenas and V8's young generation, as this run got them. */
function processMemoryEnv(): Record<string, string> {
  const names = ['MALLOC_ARENA_MAX', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_', 'NODE_OPTIONS'];
  return Object.fromEntries(names.map((n) => [n, process.env[n] ?? '(unset)']));
}
const PARTIAL = process.env.INGEST_BENCH_CASES !== undefined || process.env.INGEST_BENCH_BACKLOG === '0';
/** Raw insert block size: the ingest default `ingest.maxBatchRows`. */
const RAW_BLOCK_ROWS = 10_000;

/** CPU seconds of this process: the JavaScript (main) thread and all others (chdb, libuv, GC helpers). */
interface ThreadCpu {
  main_s: number;
  other_s: number;
}

/**
 * The main thread's CPU from `/proc/self/task/PID/stat`; the others' as the process's total (`getrusage`,
 * which keeps the time of threads that have ended: the engine's pool lets idle threads go) minus the main
 * thread's. Summing `/proc/self/task/*` instead would lose every thread that ended in between.
 */
function threadCpu(): ThreadCpu {
  const u = process.cpuUsage();
  const total = (u.user + u.system) / 1e6;
  let main = 0;
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime + stime, in clock ticks (100 Hz on Linux).
    main = (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    // Not Linux: the main thread's share is unknown; everything counts as other.
  }
  return { main_s: main, other_s: total - main };
}

function cpuSince(from: ThreadCpu): ThreadCpu {
  const now = threadCpu();
  return { main_s: +(now.main_s - from.main_s).toFixed(2), other_s: +(now.other_s - from.other_s).toFixed(2) };
}

interface RawFormatResult {
  format: string;
  /** Encoding the pre-built rows plus inserting them, rows/s. */
  rows_per_s: number;
  /** The insert alone (bytes already encoded), rows/s. */
  insert_only_rows_per_s: number | null;
  encode_us_per_row: number | null;
}

interface CaseResult {
  rows_per_request: number;
  requests: number;
  rows: number;
  ingest_s: number;
  ingest_rows_per_s: number;
  /** CPU per stored prediction row, µs, by thread. */
  ingest_cpu_us_per_row: { main: number; other: number };
  /** Event-loop delay while ingest ran (monitorEventLoopDelay, 1 ms resolution), ms. */
  event_loop_delay_ms: { p50: number; p99: number; max: number };
  raw_formats: RawFormatResult[];
  raw_baseline_format: string;
  raw_rows_per_s: number;
  raw_cpu_us_per_row: { main: number; other: number };
  /** The same calls' prediction, payload and request rows inserted raw in the baseline format. */
  raw_all_tables_rows_per_s: number;
  ratio: number;
  /** Raw CPU per row / ingest CPU per row (all threads): the same comparison, steadier on a loaded machine. */
  cpu_ratio: number;
  ratio_all_tables: number;
  load_1m: number;
}

function rawRows(model: string, i: number, rows: number, t0: number): PredictionRow[] {
  const out: PredictionRow[] = [];
  for (let r = 0; r < rows; r++) {
    const features: Record<string, number> = {};
    for (let c = 0; c < FEATURES; c++) features[`x_${c}`] = value(i, r, c);
    out.push({
      model,
      version: '1',
      ts: t0 + i,
      event_id: `${model}-ev-${i}`,
      request_id: `${model}-req-${i}`,
      row: r,
      features_num: features,
      features_cat: {},
      outputs_num: { p_0: 0.5 },
      outputs_cat: {},
    });
  }
  return out;
}

/** TabSeparated escaping of a value and of a Map key or string value (quoted with '). */
function tsv(s: string): string {
  return /[\\\t\n\r']/.test(s)
    ? s.replace(/[\\\t\n\r']/g, (c) => ({ '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c] ?? `\\${c}`)
    : s;
}

function tsvMap(m: Record<string, number | string>, quote: boolean): string {
  const parts: string[] = [];
  for (const k in m) {
    const v = m[k] as number | string;
    parts.push(`'${tsv(k)}':${quote ? `'${tsv(String(v))}'` : String(v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** One encoder per format the store's encoded insert accepts, from the same pre-built rows. */
const RAW_ENCODERS: { format: EncodedInsertFormat; columns?: readonly string[]; line: (r: PredictionRow) => string }[] =
  [
    {
      format: 'JSONEachRow',
      line: (r) =>
        JSON.stringify({
          model: r.model,
          version: r.version,
          ts: r.ts,
          event_id: r.event_id,
          request_id: r.request_id,
          row: r.row,
          features_num: r.features_num,
          features_cat: r.features_cat,
          outputs_num: r.outputs_num,
          outputs_cat: r.outputs_cat,
        }),
    },
    { format: 'JSONCompactEachRow', columns: PredictionColumns, line: predictionLine },
    {
      format: 'TabSeparated',
      columns: PredictionColumns,
      line: (r) =>
        [
          tsv(r.model),
          tsv(r.version),
          String(r.ts / 1000),
          tsv(r.event_id),
          tsv(r.request_id),
          String(r.row),
          tsvMap(r.features_num, false),
          tsvMap(r.features_cat, true),
          tsvMap(r.outputs_num, false),
          tsvMap(r.outputs_cat, true),
        ].join('\t'),
    },
  ];

/** Formats the store does not take (binary): each attempt's error is recorded. */
const REFUSED_FORMATS = ['RowBinary', 'Native', 'Arrow', 'Parquet'] as const;

async function publishAll(bus: InProcessBusType, messages: BusMessage[], chunk = 256): Promise<number> {
  let fullWaits = 0;
  for (let k = 0; k < messages.length;) {
    const part = messages.slice(k, k + chunk);
    try {
      await bus.publish(part);
      k += part.length;
    } catch (err) {
      if (!isModelwatchError(err, 'bus_full')) throw err;
      // Backpressure: the bus is bounded in bytes; wait for ingest to drain it.
      fullWaits++;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return fullWaits;
}

async function countRows(store: ClickHouseStoreType, model: string): Promise<number> {
  const [row] = await store.query<{ n: number }>(
    `SELECT count() AS n FROM ${Tables.predictions} WHERE model = {model:String}`,
    {
      params: { model },
    },
  );
  return Number(row?.n ?? 0);
}

async function rowsInserted(registry: Registry): Promise<number> {
  const m = registry.getSingleMetric('modelwatch_ingest_rows_inserted_total');
  const v = await m?.get();
  return v?.values.reduce((a, x) => a + x.value, 0) ?? 0;
}

/** Inserts `rows` raw in `enc`'s format in RAW_BLOCK_ROWS blocks; returns encode and insert seconds. */
async function rawInsert(
  store: ClickHouseStoreType,
  table: string,
  rows: readonly object[],
  enc: { format: EncodedInsertFormat; columns?: readonly string[]; line: (r: never) => string },
): Promise<{ encode_s: number; insert_s: number }> {
  let encodeMs = 0;
  let insertMs = 0;
  for (let k = 0; k < rows.length; k += RAW_BLOCK_ROWS) {
    let t = performance.now();
    const lines: string[] = [];
    for (const r of rows.slice(k, k + RAW_BLOCK_ROWS)) lines.push(enc.line(r as never));
    const body = Buffer.from(lines.join('\n') + '\n');
    encodeMs += performance.now() - t;
    t = performance.now();
    await store.insertEncoded(table, body, {
      role: 'ingest',
      format: enc.format,
      ...(enc.columns ? { columns: enc.columns } : {}),
    });
    insertMs += performance.now() - t;
  }
  return { encode_s: encodeMs / 1000, insert_s: insertMs / 1000 };
}

async function runCase(store: ClickHouseStoreType, rowsPerRequest: number): Promise<CaseResult> {
  const requests = Math.max(1, Math.round(ROWS_PER_CASE / rowsPerRequest));
  const rows = requests * rowsPerRequest;
  const t0 = Date.UTC(2026, 0, 1) + rowsPerRequest * 10_000_000;
  const model = `bench-${rowsPerRequest}`;
  const calls = Array.from({ length: requests }, (_, i) => call(model, i, rowsPerRequest, t0));
  const messages = calls.map((c) => encodeCapture(c));

  // Whole ingest path, with the bus as `modelwatch up` makes it (src/runtime/create.ts).
  const config = configSchema.parse({ logLevel: 'silent' });
  const bus = new InProcessBus(inProcessBusOptions(config));
  const registry = new Registry();
  const role = await startIngest({ config, store, bus, logger: silentLogger, metrics: registry });
  await role.ready;
  const eld = monitorEventLoopDelay({ resolution: 1 });
  const cpu0 = threadCpu();
  eld.enable();
  const started = performance.now();
  await publishAll(bus, messages);
  while ((await rowsInserted(registry)) < rows) await new Promise((r) => setTimeout(r, 2));
  const ingestS = (performance.now() - started) / 1000;
  eld.disable();
  const ingestCpu = cpuSince(cpu0);
  await role.stop();
  if ((await countRows(store, model)) !== rows) throw new Error(`ingest stored a wrong row count for ${model}`);

  // Raw inserts of the same prediction rows (pre-built before timing), same table, same block size as
  // ingest's largest write, one model per format.
  const rawFormats: RawFormatResult[] = [];
  let best = { format: '', s: Infinity, cpu: { main_s: 0, other_s: 0 } };
  for (const enc of RAW_ENCODERS) {
    const rawModel = `raw-${enc.format}-${rowsPerRequest}`;
    const built: PredictionRow[] = [];
    for (let i = 0; i < requests; i++) built.push(...rawRows(rawModel, i, rowsPerRequest, t0));
    const c0 = threadCpu();
    const t = await rawInsert(store, Tables.predictions, built, enc);
    const cpu = cpuSince(c0);
    if ((await countRows(store, rawModel)) !== rows) throw new Error(`raw ${enc.format} stored a wrong row count`);
    const total = t.encode_s + t.insert_s;
    rawFormats.push({
      format: `${enc.format} (encoded bytes)`,
      rows_per_s: Math.round(rows / total),
      insert_only_rows_per_s: Math.round(rows / t.insert_s),
      encode_us_per_row: +((t.encode_s * 1e6) / rows).toFixed(2),
    });
    if (total < best.s) best = { format: enc.format, s: total, cpu };
  }
  {
    // The client's own insert of row objects (JSONEachRow), as the store's insertPredictions does.
    const rawModel = `raw-client-${rowsPerRequest}`;
    const built: PredictionRow[] = [];
    for (let i = 0; i < requests; i++) built.push(...rawRows(rawModel, i, rowsPerRequest, t0));
    const t = performance.now();
    for (let k = 0; k < built.length; k += RAW_BLOCK_ROWS) {
      await store.insertPredictions(built.slice(k, k + RAW_BLOCK_ROWS), { role: 'ingest' });
    }
    const s = (performance.now() - t) / 1000;
    rawFormats.push({
      format: 'JSONEachRow (client insert of row objects)',
      rows_per_s: Math.round(rows / s),
      insert_only_rows_per_s: null,
      encode_us_per_row: null,
    });
  }
  for (const format of REFUSED_FORMATS) {
    try {
      await store.insertEncoded(Tables.predictions, Buffer.from([0]), {
        role: 'ingest',
        format: format as EncodedInsertFormat,
      });
      rawFormats.push({
        format: `${format}: accepted?!`,
        rows_per_s: 0,
        insert_only_rows_per_s: null,
        encode_us_per_row: null,
      });
    } catch (err) {
      refused.set(
        format,
        String((err as Error).message)
          .split('\n')[0]
          ?.slice(0, 160) ?? '',
      );
    }
  }
  const bestEnc = RAW_ENCODERS.find((e) => e.format === best.format) ?? RAW_ENCODERS[1];
  // All three tables ingest writes, raw, in the baseline format (JSONCompactEachRow lines of the same rows).
  const allModel = `raw-all-${rowsPerRequest}`;
  const preds: PredictionRow[] = [];
  for (let i = 0; i < requests; i++) preds.push(...rawRows(allModel, i, rowsPerRequest, t0));
  const reqs: RequestRow[] = calls.map((c, i) => ({
    model: allModel,
    version: '1',
    ts: t0 + i,
    event_id: `${allModel}-ev-${i}`,
    request_id: `${allModel}-req-${i}`,
    source: 'rest',
    route: c.route,
    status: 200,
    latency_ms: 1,
    request_bytes: c.request.size,
    response_bytes: c.response.size,
    request_truncated: false,
    response_truncated: false,
    rows: rowsPerRequest,
    error: '',
  }));
  const pays = calls.map((c) => payloadRowOf({ ...c, eventId: `${allModel}-${c.eventId}` }, allModel, '1') ?? null);
  const allStarted = performance.now();
  await rawInsert(store, Tables.predictions, preds, bestEnc ?? RAW_ENCODERS[1]!);
  await rawInsert(
    store,
    'mw_payloads',
    pays.filter((p) => p !== null),
    { format: 'JSONCompactEachRow', columns: PayloadColumns, line: payloadLine },
  );
  await rawInsert(store, Tables.requests, reqs, {
    format: 'JSONCompactEachRow',
    columns: RequestColumns,
    line: requestLine,
  });
  const allS = (performance.now() - allStarted) / 1000;

  const rawRowsPerS = Math.round(rows / best.s);
  const ingestRowsPerS = Math.round(rows / ingestS);
  const result: CaseResult = {
    rows_per_request: rowsPerRequest,
    requests,
    rows,
    ingest_s: +ingestS.toFixed(3),
    ingest_rows_per_s: ingestRowsPerS,
    ingest_cpu_us_per_row: {
      main: +((ingestCpu.main_s * 1e6) / rows).toFixed(1),
      other: +((ingestCpu.other_s * 1e6) / rows).toFixed(1),
    },
    event_loop_delay_ms: {
      p50: +(eld.percentile(50) / 1e6).toFixed(2),
      p99: +(eld.percentile(99) / 1e6).toFixed(2),
      max: +(eld.max / 1e6).toFixed(2),
    },
    raw_formats: rawFormats,
    raw_baseline_format: best.format,
    raw_rows_per_s: rawRowsPerS,
    raw_cpu_us_per_row: {
      main: +((best.cpu.main_s * 1e6) / rows).toFixed(1),
      other: +((best.cpu.other_s * 1e6) / rows).toFixed(1),
    },
    raw_all_tables_rows_per_s: Math.round(rows / allS),
    ratio: +(best.s / ingestS).toFixed(3),
    cpu_ratio: +((best.cpu.main_s + best.cpu.other_s) / Math.max(1e-9, ingestCpu.main_s + ingestCpu.other_s)).toFixed(
      3,
    ),
    ratio_all_tables: +(allS / ingestS).toFixed(3),
    load_1m: +(loadavg()[0] ?? 0).toFixed(2),
  };
  console.error(JSON.stringify(result));
  return result;
}

/** Why each binary format was refused (filled by runCase). */
const refused = new Map<string, string>();

interface BacklogResult {
  records: number;
  bus_max_buffered_bytes: number;
  seconds: number;
  records_per_s: number;
  rss_before_mb: number;
  rss_peak_mb: number;
  rss_end_mb: number;
  rss_peak_first_10pct_mb: number;
  /** Peak V8 heap used (JS objects), to tell JS memory from native (chdb, buffers). */
  heap_used_peak_mb: number;
  /** Peak Buffer/ArrayBuffer memory (message values live here). */
  array_buffers_peak_mb: number;
  producer_bus_full_waits: number;
  /** Event-loop delay over the backlog run, ms. */
  event_loop_delay_ms: { p50: number; p99: number; max: number };
  load_1m: number;
  /** RSS after each tenth of the backlog was produced: flat once ClickHouse's caches are warm = bounded. */
  rss_by_tenth_mb: number[];
  /** Peak of the engine's own tracked memory (`system.metrics` MemoryTracking), MB. */
  engine_tracked_peak_mb: number;
  /** What resident memory was made of at the RSS peak (/proc/self/smaps by mapping, threads by name). */
  resident_at_peak: string;
}

async function runBacklog(store: ClickHouseStoreType): Promise<BacklogResult> {
  const config = configSchema.parse({ logLevel: 'silent' });
  // The bus as `modelwatch up` makes it (src/runtime/create.ts).
  const bus = new InProcessBus(inProcessBusOptions(config));
  const registry = new Registry();
  const role = await startIngest({ config, store, bus, logger: silentLogger, metrics: registry });
  await role.ready;
  const eld = monitorEventLoopDelay({ resolution: 1 });
  eld.enable();
  const model = 'bench-backlog';
  const t0 = Date.UTC(2025, 0, 1);
  // A few distinct bodies re-used across records: the producer must not hold the backlog itself.
  const templates = Array.from({ length: 16 }, (_, i) => call(model, i, 1, t0));
  global.gc?.();
  const mb = (b: number): number => +(b / 1024 / 1024).toFixed(1);
  const before = process.memoryUsage().rss;
  let peak = before;
  let peakEarly = before;
  let produced = 0;
  let heapPeak = 0;
  let buffersPeak = 0;
  let splitAtRss = 0;
  let split: ResidentSplit | undefined;
  const sampler = setInterval(() => {
    const mem = process.memoryUsage();
    const rss = mem.rss;
    // Re-read where resident memory is when the peak grew by 4 MB or more (reading smaps takes a few ms).
    if (rss > splitAtRss + 4 * 1024 * 1024) {
      splitAtRss = rss;
      split = residentSplit();
    }
    heapPeak = Math.max(heapPeak, mem.heapUsed);
    buffersPeak = Math.max(buffersPeak, mem.arrayBuffers);
    peak = Math.max(peak, rss);
    if (produced < BACKLOG_RECORDS / 10) peakEarly = Math.max(peakEarly, rss);
  }, 50);
  const engineMemory = sampleEngineMemory(store);
  const started = performance.now();
  let fullWaits = 0;
  const byTenth: number[] = [];
  const CHUNK = 1000;
  for (let k = 0; k < BACKLOG_RECORDS; k += CHUNK) {
    const part: BusMessage[] = [];
    for (let i = k; i < Math.min(BACKLOG_RECORDS, k + CHUNK); i++) {
      const tpl = templates[i % templates.length] as CapturedCall;
      part.push(
        encodeCapture({ ...tpl, eventId: `${model}-ev-${i}`, requestId: `${model}-req-${i}`, startedAt: t0 + i }),
      );
    }
    fullWaits += await publishAll(bus, part, CHUNK);
    produced = k + part.length;
    if (produced % (BACKLOG_RECORDS / 10) === 0) {
      byTenth.push(mb(process.memoryUsage().rss));
      console.error(
        `backlog: ${produced} produced, rss ${mb(process.memoryUsage().rss)} MB, heap ${mb(process.memoryUsage().heapUsed)} MB`,
      );
    }
  }
  while ((await rowsInserted(registry)) < BACKLOG_RECORDS) await new Promise((r) => setTimeout(r, 20));
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  engineMemory.stop();
  eld.disable();
  await role.stop();
  const result: BacklogResult = {
    records: BACKLOG_RECORDS,
    bus_max_buffered_bytes: config.bus.maxBufferedBytes,
    seconds: +seconds.toFixed(1),
    records_per_s: Math.round(BACKLOG_RECORDS / seconds),
    rss_before_mb: mb(before),
    rss_peak_mb: mb(peak),
    rss_end_mb: mb(process.memoryUsage().rss),
    rss_peak_first_10pct_mb: mb(peakEarly),
    heap_used_peak_mb: mb(heapPeak),
    array_buffers_peak_mb: mb(buffersPeak),
    engine_tracked_peak_mb: mb(engineMemory.peak()),
    resident_at_peak: split !== undefined ? `${mb(splitAtRss)} MB: ${formatSplit(split)}` : '',
    producer_bus_full_waits: fullWaits,
    event_loop_delay_ms: {
      p50: +(eld.percentile(50) / 1e6).toFixed(2),
      p99: +(eld.percentile(99) / 1e6).toFixed(2),
      max: +(eld.max / 1e6).toFixed(2),
    },
    load_1m: +(loadavg()[0] ?? 0).toFixed(2),
    rss_by_tenth_mb: byTenth,
  };
  console.error(JSON.stringify(result));
  return result;
}

interface DecodeCost {
  calls: number;
  /** `decodeCall` per 1-row JSON call (best of 5 passes), µs. */
  decode_call_us: number;
  /** A bare `JSON.parse` of both bodies of the same calls (best of 5 passes), µs. */
  json_parse_us: number;
}

/** CPU cost of V2 decoding of a 1-row call, next to the floor set by `JSON.parse` alone. */
function decodeCost(): DecodeCost {
  const N = 20_000;
  const calls = Array.from({ length: N }, (_, i) => call('decode-cost', i, 1, 0));
  const best = (fn: () => void): number => {
    let b = Infinity;
    for (let k = 0; k < 5; k++) {
      const t = performance.now();
      fn();
      b = Math.min(b, performance.now() - t);
    }
    return +((b * 1000) / N).toFixed(2);
  };
  const result: DecodeCost = {
    calls: N,
    decode_call_us: best(() => {
      for (const c of calls) decodeCall(c, defaultModelSchema);
    }),
    json_parse_us: best(() => {
      for (const c of calls) {
        JSON.parse(c.request.body.toString('utf8'));
        JSON.parse(c.response.body.toString('utf8'));
      }
    }),
  };
  console.error(JSON.stringify(result));
  return result;
}

/** Runs the ingest benchmark and writes bench/results/ingest.json and ingest.md. */
export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bench-ingest-'));
  const store = createStore({ url: `chdb:${dir}` });
  try {
    await store.migrate();
    // Backlog first, so its RSS baseline is not inflated by the throughput cases' pre-built rows.
    const backlog = BACKLOG_RECORDS > 0 ? await runBacklog(store) : undefined;
    const decode = decodeCost();
    const cases: CaseResult[] = [];
    for (const rpr of CASES) cases.push(await runCase(store, rpr));
    if (PARTIAL || backlog === undefined) {
      console.log(JSON.stringify({ partial: true, backlog, decode, cases }, null, 2));
      return;
    }
    const summary = {
      generated_at: new Date().toISOString(),
      machine: { node: process.version, cpus: (await import('node:os')).cpus().length },
      features: FEATURES,
      store: 'chdb (embedded ClickHouse)',
      engine_merge_tree_settings: DefaultEmbeddedEngineConfig.mergeTree,
      // Start-up settings that move the backlog's RSS (docs/ingest.md, "The allocator"): recorded, never set here.
      process_env: processMemoryEnv(),
      // Set by ingest itself when it starts (config `ingest.heapGrowingPercent`, docs/ingest.md "The JavaScript heap").
      ingest_heap_growing_percent: configSchema.parse({}).ingest.heapGrowingPercent,
      target_ratio: 0.8,
      target_backlog_rss_mb: 600,
      decode_1_row: decode,
      cases,
      refused_formats: Object.fromEntries(refused),
      backlog,
      load_1m_end: +(loadavg()[0] ?? 0).toFixed(2),
    };
    mkdirSync(join(root, 'bench', 'results'), { recursive: true });
    writeFileSync(join(root, 'bench', 'results', 'ingest.json'), JSON.stringify(summary, null, 2) + '\n');
    const first = cases[0];
    const md = [
      '# Ingest benchmark',
      '',
      `Embedded ClickHouse (chdb), ${FEATURES} FP32 features per row, ${summary.machine.cpus} CPUs, Node ${process.version}. ` +
        'Ingest = in-process bus (as `modelwatch up` makes it) → capture decode → V2 JSON decode → event-id lookup → ' +
        'inserts of predictions, payloads and requests (JSONCompactEachRow bytes). ' +
        `Raw = the same pre-built prediction rows encoded and inserted in ${RAW_BLOCK_ROWS}-row blocks, in every format the store accepts; ` +
        'the fastest is the baseline. "All tables" = the raw insert of every row ingest writes (predictions, payloads, requests).',
      '',
      '| rows/request | rows | ingest rows/s | raw baseline rows/s (format) | ingest / raw (target ≥ 0.8) | CPU ratio raw / ingest | raw all tables rows/s | ingest / raw all tables | CPU µs/row ingest (JS + engine) | CPU µs/row raw (JS + engine) | event-loop delay p99 / max ms | load 1m |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...cases.map(
        (c) =>
          `| ${c.rows_per_request} | ${c.rows} | ${c.ingest_rows_per_s} | ${c.raw_rows_per_s} (${c.raw_baseline_format}) | ${c.ratio} | ${c.cpu_ratio} | ` +
          `${c.raw_all_tables_rows_per_s} | ${c.ratio_all_tables} | ${c.ingest_cpu_us_per_row.main} + ${c.ingest_cpu_us_per_row.other} | ` +
          `${c.raw_cpu_us_per_row.main} + ${c.raw_cpu_us_per_row.other} | ${c.event_loop_delay_ms.p99} / ${c.event_loop_delay_ms.max} | ${c.load_1m} |`,
      ),
      '',
      '## Raw insert formats tried (same rows, same run)',
      '',
      '| rows/request | format | encode + insert rows/s | insert only rows/s | encode µs/row |',
      '|---:|---|---:|---:|---:|',
      ...cases.flatMap((c) =>
        c.raw_formats.map(
          (f) =>
            `| ${c.rows_per_request} | ${f.format} | ${f.rows_per_s} | ${f.insert_only_rows_per_s ?? '–'} | ${f.encode_us_per_row ?? '–'} |`,
        ),
      ),
      '',
      'Refused by the store (binary formats; `@clickhouse/client` takes JSON formats only as row objects and raw bodies only in ' +
        "CSV/TSV/CustomSeparated/Parquet, and chdb's connection turns an insert body into a JavaScript string, so only text formats " +
        "reach the embedded engine intact; chdb's raw insert, which the store uses, takes JSONEachRow, JSONCompactEachRow, CSV and TSV):",
      '',
      ...[...refused].map(([f, why]) => `- ${f}: \`${why}\``),
      '',
      `Backlog: ${backlog.records} one-row calls through a bus bounded at ${backlog.bus_max_buffered_bytes / 1024 / 1024} MiB, ` +
        `producer backing off on \`bus_full\` (${backlog.producer_bus_full_waits} waits): ${backlog.seconds} s (${backlog.records_per_s} calls/s); ` +
        `RSS ${backlog.rss_before_mb} MB before, **peak ${backlog.rss_peak_mb} MB** (target ≤ 600; peak in the first 10% ${backlog.rss_peak_first_10pct_mb} MB), ` +
        `${backlog.rss_end_mb} MB at the end; peak V8 heap ${backlog.heap_used_peak_mb} MB, peak Buffer memory ${backlog.array_buffers_peak_mb} MB, ` +
        `peak memory tracked by the engine ${backlog.engine_tracked_peak_mb} MB, with the engine's MergeTree settings ` +
        `${JSON.stringify(DefaultEmbeddedEngineConfig.mergeTree)} and server settings ${JSON.stringify(DefaultEmbeddedEngineConfig.server)} (modelwatch-engine.xml) ` +
        "(the rest of RSS is native: the engine's code and untracked allocations, and the allocators). " +
        `Process memory settings: ${JSON.stringify(processMemoryEnv())}; V8 old-generation growth between full collections ` +
        `bounded by ingest at ${configSchema.parse({}).ingest.heapGrowingPercent} % (\`ingest.heapGrowingPercent\`). ` +
        `RSS after each tenth of the backlog: ${backlog.rss_by_tenth_mb.join(', ')} MB. ` +
        `Resident memory at the peak (${backlog.resident_at_peak}). ` +
        `Event-loop delay p50 / p99 / max: ${backlog.event_loop_delay_ms.p50} / ${backlog.event_loop_delay_ms.p99} / ${backlog.event_loop_delay_ms.max} ms.`,
      '',
      `1-minute load average: ${first?.load_1m ?? '?'} after the first case, ${backlog.load_1m} after the backlog, ${summary.load_1m_end} at the end ` +
        `(2 CPUs; wall-clock rates move with the load, the ratios are measured in the same run; CPU µs per row is steadier). ` +
        `\`decodeCall\` of a 1-row call costs ${decode.decode_call_us} µs in this run (a bare \`JSON.parse\` of both bodies: ${decode.json_parse_us} µs).`,
      '',
    ].join('\n');
    writeFileSync(join(root, 'bench', 'results', 'ingest.md'), md);
    console.log(md);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
