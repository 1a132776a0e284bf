/**
 * `modelwatch demo`: a model server of its own, the sidecar in front of it and every role of
 * `modelwatch up`, then a story told on the terminal — warm-up traffic, a reference pinned, drift and a
 * performance drop injected, detection, alerts, a shadow replay of a candidate, and the return to normal.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../common/errors.js';
import { LogLevels, createLogger, type LogLevel, type Logger } from '../common/logger.js';
import { createReference } from '../drift/reference.js';
import type { Store } from '../store/store.js';
import { ApiClient, answerError } from './client.js';
import { demoConfig } from './config.js';
import { startDemoModelServer, type DemoModelServer } from './model-server.js';
import { Progress } from './progress.js';
import {
  CANDIDATE_FILE,
  DEMO_FEATURES,
  DEMO_MODEL,
  DEMO_VERSION,
  candidateModelBytes,
  demoModelBytes,
  driftDescription,
} from './scenario.js';
import { startDemoStack, type DemoStack } from './stack.js';
import { DEFAULT_STORY_MS, cadenceFor, timelineFor } from './timeline.js';
import { TrafficGenerator } from './traffic.js';
import { DemoWatcher } from './watch.js';

/** Part of `--duration` kept for stopping the roles after the story. */
const STOP_RESERVE_MS = 3_000;

/** Default working folder of the demo (store and candidate models), relative to the current directory. */
export const DEMO_DIR = '.modelwatch/demo';

/** Options of {@link runDemo}. */
export interface RunDemoOptions {
  /** Exit after this long (ms) from `startedAt`; without it the demo runs until SIGINT/SIGTERM. */
  durationMs?: number | undefined;
  /** When the duration starts counting, epoch ms (the CLI passes its process start). @default Date.now() */
  startedAt?: number | undefined;
  /** Config file (`--config`). @default $MODELWATCH_CONFIG */
  configFile?: string | undefined;
  /** Environment. @default process.env */
  env?: Record<string, string | undefined>;
  /** Working folder. @default {@link DEMO_DIR} */
  workDir?: string;
  /** Where the progress goes. @default process.stdout */
  out?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Signals that stop the demo cleanly. @default ['SIGINT', 'SIGTERM'] */
  signals?: NodeJS.Signals[];
}

/** Resolves after `ms` (true), or at once when `signal` aborts (false). */
function waitFor(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const t = setTimeout(() => done(true), Math.max(0, ms));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Rows the API lists for the model (0 while unknown). */
async function storedRows(api: ApiClient, model: string): Promise<number> {
  const a = await api.get('/api/v1/models');
  const models = obj(a.body)?.models;
  if (!Array.isArray(models)) return 0;
  const m = models.map(obj).find((x) => x?.name === model);
  return typeof m?.rows === 'number' ? m.rows : 0;
}

/**
 * Pins a reference over `[fromMs, toMs)` through `POST /api/v1/models/{name}/references`; when this
 * build has no such route (404), stores one with the drift engine's `createReference`, which detection
 * uses as the model's newest reference. Returns the reference id, or null when both failed.
 */
async function pinReference(
  api: ApiClient,
  store: Store,
  progress: Progress,
  fromMs: number,
  toMs: number,
  rowsSent: number,
  signal: AbortSignal,
): Promise<string | null> {
  // Wait (a little) until ingest has stored the warm-up rows, so the reference holds all of them.
  const deadline = Date.now() + 10_000;
  while (!signal.aborted && Date.now() < deadline && (await storedRows(api, DEMO_MODEL)) < rowsSent * 0.95) {
    await waitFor(500, signal);
  }
  const path = `/api/v1/models/${encodeURIComponent(DEMO_MODEL)}/references`;
  const window = `${clock(fromMs)}–${clock(toMs)}`;
  const a = await api.post(path, { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString() });
  if (a.status === 200 || a.status === 201) {
    const body = obj(a.body);
    const id = (body?.id ?? obj(body?.reference)?.id) as string | undefined;
    const rows = body?.rows ?? obj(body?.reference)?.rows;
    progress.line(
      `reference pinned via POST ${path}: warm-up traffic ${window}${typeof rows === 'number' ? `, ${rows} rows` : ''}${id !== undefined ? ` (id ${id})` : ''}`,
    );
    return id ?? null;
  }
  const why = a.status === 404 ? 'not in this build (404)' : `failed: ${answerError(a)}`;
  try {
    const ref = await createReference(store, { model: DEMO_MODEL, from: fromMs, to: toMs });
    progress.line(
      `reference: ${path} ${why}; stored the warm-up traffic ${window} (${ref.rows} rows, id ${ref.id}) with the drift engine's createReference — detection uses a model's newest stored reference`,
    );
    return ref.id;
  } catch (err) {
    progress.line(
      `reference: ${path} ${why}, and storing one directly failed (${errorMessage(err)}); detection falls back to its default reference`,
    );
    return null;
  }
}

/**
 * Replays the stored traffic through the candidate model with `POST /api/v1/shadow/runs` and prints its
 * verdict; says so and returns when this build has no shadow API.
 */
async function shadowReplay(
  api: ApiClient,
  progress: Progress,
  fromMs: number,
  toMs: number,
  signal: AbortSignal,
): Promise<void> {
  const a = await api.post('/api/v1/shadow/runs', {
    model: DEMO_MODEL,
    candidate: CANDIDATE_FILE,
    from: new Date(fromMs).toISOString(),
    to: new Date(toMs).toISOString(),
    limit: 5_000,
  });
  if (a.status === 404) {
    progress.line('shadow replay: not available in this build (POST /api/v1/shadow/runs answered 404); skipped');
    return;
  }
  const id = obj(a.body)?.id;
  if ((a.status !== 202 && a.status !== 200 && a.status !== 201) || typeof id !== 'string') {
    progress.line(`shadow replay could not start: ${answerError(a)}`);
    return;
  }
  progress.line(
    `shadow replay started: ${CANDIDATE_FILE} (weights perturbed) against production on the stored traffic ${clock(fromMs)}–${clock(toMs)} (run ${id})`,
  );
  const deadline = Date.now() + 90_000;
  while (!signal.aborted && Date.now() < deadline) {
    if (!(await waitFor(2_000, signal))) return;
    const r = await api.get(`/api/v1/shadow/runs/${encodeURIComponent(id)}`);
    const run = obj(r.body);
    if (r.status !== 200 || run === undefined) continue;
    // The run's own fields first, then the full report (`result`) for builds that keep them only there.
    const result = obj(run.result) ?? {};
    const pick = (key: string): unknown => run[key] ?? result[key];
    const status = typeof run.status === 'string' ? run.status : '';
    const verdict = pick('verdict');
    if (typeof verdict === 'string') {
      const agreement = pick('agreement');
      const rows = pick('rows');
      const reasons = pick('reasons');
      const list = Array.isArray(reasons) ? reasons.filter((x): x is string => typeof x === 'string') : [];
      progress.line(
        `SHADOW VERDICT: ${verdict.toUpperCase()}` +
          (typeof agreement === 'number' ? ` — agreement ${(agreement * 100).toFixed(1)}%` : '') +
          (typeof rows === 'number' ? ` over ${rows} rows` : '') +
          (list.length > 0 ? ` (${list.join('; ')})` : ''),
      );
      return;
    }
    if (/^(failed|error|cancelled)$/i.test(status)) {
      progress.line(`shadow replay ${status}: ${typeof run.error === 'string' ? run.error : 'no details'}`);
      return;
    }
  }
}

function logLevelOf(env: Record<string, string | undefined>): LogLevel {
  const v = env.MODELWATCH_LOG_LEVEL;
  return v !== undefined && (LogLevels as readonly string[]).includes(v) ? (v as LogLevel) : 'warn';
}

/**
 * Runs the demo and resolves with the exit code: 0 after the duration or a clean stop on a signal, 1 when
 * a role failed to stop. Start-up failures (a port in use, a bad config) throw {@link ModelwatchError}.
 */
export async function runDemo(options: RunDemoOptions = {}): Promise<number> {
  const env = options.env ?? process.env;
  const t0 = Math.min(options.startedAt ?? Date.now(), Date.now());
  const deadline = options.durationMs === undefined ? undefined : t0 + options.durationMs;
  const workDir = options.workDir ?? DEMO_DIR;
  const progress = new Progress({ out: options.out ?? process.stdout });

  // `stop`: a signal arrived. `halt`: the story is over (or stopped); requests in flight are abandoned.
  const stop = new AbortController();
  const halt = new AbortController();
  stop.signal.addEventListener('abort', () => halt.abort(), { once: true });
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const handlers = signals.map((s) => {
    const h = (): void => {
      if (stop.signal.aborted) process.exit(130);
      progress.line(`${s}: stopping…`);
      stop.abort();
    };
    process.on(s, h);
    return [s, h] as const;
  });
  let model: DemoModelServer | undefined;
  let stack: DemoStack | undefined;
  let traffic: TrafficGenerator | undefined;
  let watchTimer: NodeJS.Timeout | undefined;
  let stopped = true;
  try {
    // The cadence is fixed before the roles start; leave ~10% of the duration for start-up.
    const cadence = cadenceFor(options.durationMs === undefined ? DEFAULT_STORY_MS : options.durationMs * 0.9);
    const early: Logger = createLogger(logLevelOf(env));
    model = await startDemoModelServer({
      model: DEMO_MODEL,
      version: DEMO_VERSION,
      bytes: demoModelBytes(),
      features: DEMO_FEATURES.length,
      logger: early,
    });
    const { config, candidateDir, unsupported } = demoConfig({
      file: options.configFile,
      env,
      workDir,
      modelServerUrl: model.url,
      cadence,
    });
    const logger = createLogger(config.logLevel);
    const ownStore = config.clickhouse.url === `chdb:${join(workDir, 'chdb')}`;
    if (ownStore) {
      // The demo's own store starts empty each run, so what it shows is this run's story.
      rmSync(join(workDir, 'chdb'), { recursive: true, force: true });
      mkdirSync(workDir, { recursive: true });
    }
    mkdirSync(candidateDir, { recursive: true });
    writeFileSync(join(candidateDir, CANDIDATE_FILE), candidateModelBytes());
    if (stop.signal.aborted) return 0;

    stack = await startDemoStack(config, logger);
    const api = new ApiClient({ baseUrl: stack.apiUrl, token: config.api.token, signal: halt.signal });
    const { intervalMs, windowMs } = config.detect;
    const storyStart = Date.now();
    // Leave a few seconds of the duration for stopping the roles.
    const storyMs =
      deadline === undefined ? DEFAULT_STORY_MS : Math.max(10_000, deadline - storyStart - STOP_RESERVE_MS);
    const tl = timelineFor(storyMs);
    const s = (ms: number): string => `${Math.round(ms / 1000)} s`;

    progress.raw('');
    progress.raw(`modelwatch demo — the ${DEMO_MODEL} classifier served through the sidecar and watched end to end`);
    progress.raw(`  UI         ${stack.apiUrl}/`);
    progress.raw(
      `  API        ${stack.apiUrl}  (OpenAPI at /openapi.json, Prometheus at /metrics)${config.api.token !== undefined ? ' — bearer token required' : ''}`,
    );
    progress.raw(`  sidecar    ${stack.sidecarUrl}/v2/models/${DEMO_MODEL}/infer → model server ${model.url}`);
    progress.raw(
      `  model      ONNX logistic regression over ${DEMO_FEATURES.join(', ')}; onnxruntime-node (${model.executionProvider}) in a worker thread`,
    );
    progress.raw(
      `  store      ${config.clickhouse.url.startsWith('chdb:') ? config.clickhouse.url : config.clickhouse.url.replace(/\/\/[^@/]*@/, '//')}`,
    );
    progress.raw(`  roles      ${stack.roles.join(', ')}`);
    progress.raw(`  detection  every ${s(intervalMs)} over the last ${s(windowMs)}`);
    progress.raw(
      `  timeline   reference pinned at ${s(tl.pinAt)}, drift at ${s(tl.driftAt)}, back to normal at ${s(tl.normalAt)}, ` +
        (deadline === undefined ? `then normal traffic until Ctrl-C` : `exit at ${s(tl.endAt)}`),
    );
    if (unsupported.length > 0)
      progress.raw(`  note       not in this build, defaults kept: ${unsupported.join(', ')}`);
    progress.raw('');
    progress.startClock();

    let injectedAt: number | undefined;
    const trafficGen = new TrafficGenerator({ sidecarUrl: stack.sidecarUrl, api, model: DEMO_MODEL, logger });
    traffic = trafficGen;
    const watcher = new DemoWatcher({ api, model: DEMO_MODEL, progress });
    let polling: Promise<void> | undefined;
    let phase = 'warm-up';
    const status = (): void => {
      const t = trafficGen.stats;
      const err =
        t.errors > 0
          ? `, ${t.errors} failed${trafficGen.lastCallError !== '' ? ` (${trafficGen.lastCallError})` : ''}`
          : '';
      progress.status(
        `${phase} · ${t.requests} calls (${t.rows} rows${err}) · ${t.labelsPosted} labels · ${watcher.statusText()}`,
      );
    };
    let ticks = 0;
    watchTimer = setInterval(() => {
      status();
      // Poll the API every 3 s: on a busy machine the embedded store serves ingest and detection first.
      if (ticks++ % 3 === 0) {
        polling ??= watcher.poll().finally(() => {
          polling = undefined;
        });
      }
    }, 1_000);

    progress.line(
      `phase 1/4 · warm-up: baseline traffic, ~5 calls/s × 6 rows; ground truth for 60% of calls posted 3 s later`,
    );
    trafficGen.start();
    const sig = stop.signal;
    const at = (ms: number): Promise<boolean> => waitFor(storyStart + ms - Date.now(), sig);

    if (await at(tl.pinAt)) {
      phase = 'monitoring';
      progress.line('phase 2/4 · pin a reference: the warm-up traffic becomes what "normal" means');
      await pinReference(api, stack.runtime.store, progress, storyStart, Date.now(), trafficGen.stats.rows, sig);
    }
    if (await at(tl.driftAt)) {
      phase = 'drift injected';
      trafficGen.setDrift(true);
      injectedAt = Date.now();
      watcher.markDrift(injectedAt);
      progress.line(
        `phase 3/4 · drift and a performance drop injected at ${new Date().toISOString()}: ${driftDescription()}`,
      );
    }
    let replay: Promise<void> | undefined;
    if (await at(tl.shadowAt)) {
      replay = shadowReplay(api, progress, storyStart, Date.now(), halt.signal).catch((err: unknown) => {
        progress.line(`shadow replay failed: ${errorMessage(err)}`);
      });
    }
    if (await at(tl.normalAt)) {
      phase = 'back to normal';
      trafficGen.setDrift(false);
      progress.line('phase 4/4 · traffic back to normal: detection should clear and alerts resolve');
    }
    if (deadline !== undefined) {
      await at(tl.endAt);
    } else if (await at(tl.endAt)) {
      phase = 'normal';
      progress.line('story complete; normal traffic goes on — press Ctrl-C to stop');
      while (await waitFor(3_600_000, sig)) {
        // normal traffic until a signal
      }
    }

    clearInterval(watchTimer);
    watchTimer = undefined;
    // Stop the traffic first so that what `halt` abandons is not reported as a failure.
    const trafficStopped = trafficGen.stop();
    halt.abort();
    await polling;
    await trafficStopped;
    await replay;
    progress.end();
    const sum = watcher.summary;
    const t = trafficGen.stats;
    progress.line(`done: ${t.requests} calls (${t.rows} rows, ${t.errors} failed), ${t.labelsPosted} labels posted`);
    if (injectedAt === undefined) progress.line('  stopped before the drift was injected');
    else {
      const after = (what: string, ms: number | null): string =>
        ms === null ? `${what}: not seen` : `${what} ${Math.round((ms - injectedAt) / 1000)} s after the injection`;
      const parts = [after('drift detected', sum.driftDetectedAt), after('accuracy drop seen', sum.performanceDropAt)];
      if (!sum.alertsAvailable) parts.push('alerts: not available in this build');
      else {
        parts.push(after('alert fired', sum.alertFiredAt));
        if (sum.alertFiredAt !== null) parts.push(after('alert resolved', sum.alertResolvedAt));
      }
      progress.line(`  ${parts.join('; ')}`);
    }
    if (ownStore) {
      progress.line(
        `  the results stay in ${config.clickhouse.url}; browse them with MODELWATCH_CLICKHOUSE_URL=${config.clickhouse.url} npx modelwatch up`,
      );
    }
  } finally {
    if (watchTimer !== undefined) clearInterval(watchTimer);
    await traffic?.stop();
    stopped = (await stack?.stop()) ?? true;
    await model?.stop();
    for (const [s, h] of handlers) process.off(s, h);
  }
  // A role that did not stop cleanly was logged by the stack.
  return stopped ? 0 : 1;
}
