/**
 * Shadow runs as a service: a lazily started pool built from `shadow.*` config, candidates resolved
 * safely (a file name inside `shadow.modelDir`, or uploaded bytes within `shadow.maxUploadBytes`),
 * asynchronous replay runs with in-memory progress, and stored runs read back from ClickHouse.
 */
import { realpathSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ErrorCodes, ModelwatchError, errorMessage } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { RuntimeContext } from '../runtime/context.js';
import { ShadowPool } from './pool.js';
import { runReplay, type ReplayProgress, type ShadowReport } from './replay.js';
import { createShadowMetrics, listRuns, readRun, type ShadowMetrics, type ShadowRunRecord } from './results.js';

/** The pool options of a config's `shadow` section. */
export function poolOptionsOf(
  ctx: Pick<RuntimeContext, 'config' | 'logger'>,
): ConstructorParameters<typeof ShadowPool>[0] {
  const s = ctx.config.shadow;
  return {
    executionProviders: s.executionProviders,
    intraOpNumThreads: s.intraOpNumThreads,
    ...(s.sessions !== undefined ? { workers: s.sessions } : {}),
    logger: ctx.logger,
  };
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.onnx$/;

function refused(message: string): ModelwatchError {
  return new ModelwatchError(ErrorCodes.badRequest, message, { field: 'candidate' });
}

/**
 * The path of a candidate named in an API request: a plain file name ending in `.onnx` inside `modelDir`
 * (no separators, no `..`, not absolute), whose real path (symlinks resolved) stays inside `modelDir`.
 */
export async function resolveCandidateName(modelDir: string, name: string): Promise<string> {
  if (
    isAbsolute(name) ||
    name.includes('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    !NAME.test(name) ||
    name !== basename(name)
  ) {
    throw refused(
      `candidate must be the file name of a .onnx model inside shadow.modelDir (got ${JSON.stringify(name)})`,
    );
  }
  const dir = resolve(modelDir);
  const path = join(dir, name);
  let real: string;
  let realDir: string;
  try {
    realDir = realpathSync(dir);
    real = realpathSync(path);
  } catch {
    throw new ModelwatchError(ErrorCodes.notFound, `candidate ${name} not found in shadow.modelDir`, {
      field: 'candidate',
    });
  }
  const rel = relative(realDir, real);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) {
    throw refused(`candidate ${name} resolves outside shadow.modelDir`);
  }
  if (!(await stat(real)).isFile()) throw refused(`candidate ${name} is not a file`);
  return real;
}

/** A replay request (API body or CLI flags). */
export interface ShadowRunRequest {
  model: string;
  /** File name in `shadow.modelDir` (API) — exclusive with `upload`. */
  candidate?: string | undefined;
  /** Uploaded model bytes with a display name. */
  upload?: { bytes: Uint8Array; name: string } | undefined;
  fromMs?: number | undefined;
  toMs?: number | undefined;
  limit?: number | undefined;
  sample?: number | undefined;
}

/** A run as the API reports it: stored state plus live progress while it runs. */
export interface ShadowRunView {
  id: string;
  model: string;
  candidate: string;
  status: string;
  progress: number;
  rows: number;
  skipped: number;
  created_at: string;
  updated_at: string;
  execution_provider: string;
  agreement: number | null;
  verdict: string | null;
  reasons: string[];
  error: string | null;
  result: ShadowReport | null;
}

function view(r: ShadowRunRecord, live?: ReplayProgress): ShadowRunView {
  return {
    id: r.run_id,
    model: r.model,
    candidate: r.candidate,
    status: r.status,
    progress: live?.fraction ?? r.progress,
    rows: live?.rows ?? r.rows,
    skipped: live?.skipped ?? r.skipped,
    created_at: new Date(r.created_at).toISOString(),
    updated_at: new Date(r.updated_at).toISOString(),
    execution_provider: r.execution_provider,
    agreement: r.agreement,
    verdict: r.verdict === '' ? null : r.verdict,
    reasons: r.reasons,
    error: r.error === '' ? null : r.error,
    result: r.result === '' ? null : (JSON.parse(r.result) as ShadowReport),
  };
}

/** Replay runs for the API: one pool per runtime, started on first use. */
export class ShadowService {
  private pool: ShadowPool | undefined;
  private readonly live = new Map<string, { progress: ReplayProgress; done: Promise<void> }>();
  readonly metrics: ShadowMetrics;

  constructor(private readonly ctx: RuntimeContext) {
    this.metrics = createShadowMetrics(ctx.metrics);
  }

  private poolOf(): ShadowPool {
    this.pool ??= new ShadowPool(poolOptionsOf(this.ctx));
    return this.pool;
  }

  /** Reads the candidate of a request (name in modelDir or upload). */
  async candidateOf(req: ShadowRunRequest): Promise<{ bytes: Uint8Array; name: string }> {
    if (req.upload !== undefined) {
      const max = this.ctx.config.shadow.maxUploadBytes;
      if (req.upload.bytes.byteLength > max) {
        throw new ModelwatchError(ErrorCodes.payloadTooLarge, `uploaded candidate is larger than ${max} bytes`, {
          field: 'candidate_base64',
        });
      }
      return req.upload;
    }
    if (req.candidate === undefined) throw refused('candidate or candidate_base64 is required');
    const path = await resolveCandidateName(this.ctx.config.shadow.modelDir, req.candidate);
    return { bytes: new Uint8Array(await readFile(path)), name: req.candidate };
  }

  /** Starts a run in the background; resolves with its id once the candidate was read. */
  async start(req: ShadowRunRequest): Promise<string> {
    const candidate = await this.candidateOf(req);
    const id = newId();
    const progress: ReplayProgress = { rows: 0, skipped: 0, fraction: 0 };
    const done = runReplay(
      {
        store: this.ctx.store,
        config: this.ctx.config,
        pool: this.poolOf(),
        metrics: this.metrics,
        logger: this.ctx.logger,
      },
      {
        model: req.model,
        candidate,
        runId: id,
        fromMs: req.fromMs,
        toMs: req.toMs,
        limit: req.limit,
        sample: req.sample,
        onProgress: (p) => Object.assign(progress, p),
      },
    ).then(
      () => undefined,
      (err: unknown) => this.ctx.logger.warn('shadow run failed', { run_id: id, error: errorMessage(err) }),
    );
    this.live.set(id, { progress, done });
    void done.finally(() => this.live.delete(id));
    // The run row is written before the candidate loads: wait for it so a GET right after finds the run.
    for (let i = 0; i < 100 && this.live.has(id) && (await readRun(this.ctx.store, id)) === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return id;
  }

  /** A run by id, with live progress while it runs. */
  async get(id: string): Promise<ShadowRunView | undefined> {
    const r = await readRun(this.ctx.store, id);
    if (!r) return undefined;
    return view(r, r.status === 'running' ? this.live.get(id)?.progress : undefined);
  }

  /** Runs, newest first, optionally of one model. */
  async list(model?: string): Promise<ShadowRunView[]> {
    return (await listRuns(this.ctx.store, model)).map((r) => ({ ...view(r), result: null }));
  }

  /** Waits for the runs in flight (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.live.values()].map((l) => l.done));
  }

  async close(): Promise<void> {
    await this.idle();
    await this.pool?.close();
    this.pool = undefined;
  }
}

const services = new WeakMap<RuntimeContext, ShadowService>();

/** The runtime's shadow service (one per runtime context). */
export function shadowServiceOf(ctx: RuntimeContext): ShadowService {
  let s = services.get(ctx);
  if (!s) services.set(ctx, (s = new ShadowService(ctx)));
  return s;
}
