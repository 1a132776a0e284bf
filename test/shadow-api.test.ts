// Shadow API on chdb: POST /api/v1/shadow/runs (202, asynchronous, progress), GET one and the list;
// candidates only by name inside shadow.modelDir or as an upload within the limit — never a path.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp } from '../src/api/app.js';
import type { ApiApp } from '../src/api/openapi.js';
import type { RuntimeContext } from '../src/runtime/index.js';
import { buildLogisticRegression } from '../src/shadow/index.js';
import { resolveCandidateName, shadowServiceOf } from '../src/shadow/service.js';
import type { ClickHouseStore } from '../src/store/index.js';
import { modelsFixture } from './fixtures/shadow/load.js';
import { apiTestContext } from './support/api.js';
import { ingestCalls, productionCalls } from './support/shadow.js';
import { openTestStore } from './support/store.js';

const fx = modelsFixture();
const lr = buildLogisticRegression(fx.params.lr);
const perturbed = buildLogisticRegression(fx.params.lr_perturbed);
let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let ctx: RuntimeContext;
let app: ApiApp;
let root: string;
let modelDir: string;

beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
  root = mkdtempSync(join(tmpdir(), 'mw-shadow-api-'));
  modelDir = join(root, 'models');
  mkdirSync(modelDir);
  writeFileSync(join(modelDir, 'lr.onnx'), lr);
  writeFileSync(join(modelDir, 'lr-perturbed.onnx'), perturbed);
  writeFileSync(join(root, 'outside.onnx'), lr);
  symlinkSync(join(root, 'outside.onnx'), join(modelDir, 'escape.onnx'));
  ctx = apiTestContext(store, {
    'shadow.modelDir': modelDir,
    'shadow.maxUploadBytes': 4096,
    'shadow.sessions': 1,
    'shadow.verdict': { minRows: 50 },
  });
  app = createApiApp(ctx);
  const { calls } = await productionCalls('lr', lr, fx.inputs.rows.slice(0, 300), Date.now() - 3_600_000);
  await ingestCalls(store, calls);
}, 120_000);

afterAll(async () => {
  await shadowServiceOf(ctx).close();
  await cleanup();
  rmSync(root, { recursive: true, force: true });
});

function post(body: unknown): Promise<Response> {
  return Promise.resolve(
    app.request('/api/v1/shadow/runs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }),
  );
}

async function waitDone(id: string): Promise<Record<string, unknown>> {
  const seen: number[] = [];
  for (let i = 0; i < 600; i++) {
    const res = await app.request(`/api/v1/shadow/runs/${id}`);
    expect(res.status).toBe(200);
    const run = (await res.json()) as Record<string, unknown>;
    seen.push(run.progress as number);
    if (run.status !== 'running') return { ...run, seen };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`run ${id} did not finish`);
}

describe('shadow API', () => {
  it('POST starts a run (202 {id}); GET reports it running, then done with the report', async () => {
    const res = await post({ model: 'lr', candidate: 'lr-perturbed.onnx', limit: 200 });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    expect(typeof id).toBe('string');
    const run = await waitDone(id);
    expect(run.status).toBe('done');
    expect(run.progress).toBe(1);
    expect(run.rows).toBe(200);
    expect(run.candidate).toBe('lr-perturbed.onnx');
    expect(run.execution_provider).toBe('cpu');
    expect(['promote', 'hold', 'reject']).toContain(run.verdict);
    const result = run.result as { rows: number; agreement: number; run_id: string };
    expect(result.run_id).toBe(id);
    expect(result.rows).toBe(200);
    expect(result.agreement).toBeLessThan(1);
    const list = await app.request('/api/v1/shadow/runs?model=lr');
    const { runs } = (await list.json()) as { runs: { id: string; result: unknown }[] };
    expect(runs.map((r) => r.id)).toContain(id);
    expect(runs[0]?.result).toBeNull();
    expect(((await (await app.request('/api/v1/shadow/runs?model=other')).json()) as { runs: unknown[] }).runs).toEqual(
      [],
    );
  });

  it('an uploaded candidate within the size limit is accepted; a larger one is 413', async () => {
    const ok = await post({
      model: 'lr',
      candidate_base64: Buffer.from(lr).toString('base64'),
      candidate_name: 'up.onnx',
    });
    expect(ok.status).toBe(202);
    const run = await waitDone(((await ok.json()) as { id: string }).id);
    expect(run.status).toBe('done');
    expect(run.agreement).toBe(1);
    const big = await post({ model: 'lr', candidate_base64: Buffer.alloc(5000, 1).toString('base64') });
    expect(big.status).toBe(413);
  });

  it('refuses paths: ../x.onnx, absolute paths, separators, a symlink out of modelDir; unknown names are 404', async () => {
    for (const candidate of [
      '../x.onnx',
      '../outside.onnx',
      join(root, 'outside.onnx'),
      '/etc/passwd',
      'sub/lr.onnx',
      '..\\lr.onnx',
      'lr.txt',
    ]) {
      const res = await post({ model: 'lr', candidate });
      expect(res.status, candidate).toBe(400);
      const body = (await res.json()) as { error: { code: string; field: string } };
      expect(body.error.field).toBe('candidate');
    }
    expect((await post({ model: 'lr', candidate: 'escape.onnx' })).status).toBe(400);
    expect((await post({ model: 'lr', candidate: 'missing.onnx' })).status).toBe(404);
    await expect(resolveCandidateName(modelDir, 'lr.onnx')).resolves.toBe(join(modelDir, 'lr.onnx'));
  });

  it('validates the body and answers 404 for an unknown run', async () => {
    expect((await post({ model: 'lr' })).status).toBe(400);
    expect((await post({ model: 'lr', candidate: 'lr.onnx', candidate_base64: 'AA==' })).status).toBe(400);
    expect((await post({ model: 'lr', candidate: 'lr.onnx', limit: -1 })).status).toBe(400);
    expect((await app.request('/api/v1/shadow/runs/nope')).status).toBe(404);
  });

  it('a corrupt candidate makes the run fail, with the error stored', async () => {
    writeFileSync(join(modelDir, 'corrupt.onnx'), lr.subarray(0, 30));
    const res = await post({ model: 'lr', candidate: 'corrupt.onnx' });
    expect(res.status).toBe(202);
    const run = await waitDone(((await res.json()) as { id: string }).id);
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/could not be loaded/);
  });
});
