// `modelwatch up` wires the roles together: a V2 call through the sidecar is teed onto the in-process
// bus, ingested into embedded ClickHouse, listed by the API, and joined with a label posted to the API.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { sleep } from '../src/common/index.js';
import { freePort } from './support/api.js';
import { repoRoot } from './support/report-files.js';
import { startV2Server, type TestV2Server } from './support/v2-server.js';

// Each test spawns the CLI through tsx; on a loaded machine one start-up can take tens of seconds.
vi.setConfig({ testTimeout: 180_000 });

const dir = mkdtempSync(join(tmpdir(), 'mw-up-'));
let upstream: TestV2Server;

beforeAll(async () => {
  upstream = await startV2Server();
});
afterAll(async () => {
  await upstream?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('cli: up with an upstream', () => {
  it('starts the REST and gRPC proxies, captures through the sidecar, ingests, serves predictions with labels, and stops cleanly', async () => {
    const [apiPort, sidecarPort, grpcPort, deadPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MODELWATCH_')));
    const child = spawn(
      process.execPath,
      [
        join(repoRoot, 'bin', 'modelwatch.js'),
        'up',
        '--upstream',
        upstream.url,
        '--grpc-upstream',
        `127.0.0.1:${deadPort}`,
        '--grpc-listen',
        `127.0.0.1:${grpcPort}`,
      ],
      {
        cwd: dir,
        env: {
          ...env,
          MODELWATCH_LOG_LEVEL: 'warn',
          MODELWATCH_CLICKHOUSE_URL: `chdb:${join(dir, 'chdb')}`,
          MODELWATCH_API_LISTEN: `127.0.0.1:${apiPort}`,
          MODELWATCH_SIDECAR_LISTEN: `127.0.0.1:${sidecarPort}`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const api = `http://127.0.0.1:${apiPort}`;
      const sidecar = `http://127.0.0.1:${sidecarPort}`;
      await until(
        'the URLs',
        () => Promise.resolve(/^api: /m.test(stdout) && /^sidecar: /m.test(stdout) ? true : undefined),
        150_000,
      );
      expect(stdout).toContain(`api: ${api}\n`);
      expect(stdout).toContain(`sidecar: ${sidecar}\n`);
      await until('the gRPC proxy URL', () => Promise.resolve(/^grpc-proxy: /m.test(stdout) ? true : undefined));
      expect(stdout).toContain(`grpc-proxy: grpc://127.0.0.1:${grpcPort}\n`);

      const infer = await fetch(`${sidecar}/v2/models/classifier/versions/1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'up-req-1' },
        body: JSON.stringify({
          inputs: [{ name: 'input', datatype: 'FP32', shape: [3, 4], data: [1, 2, 3, 4, 0, 0, 0, 0, -1, 2, -3, 4] }],
        }),
      });
      expect(infer.status).toBe(200);
      expect(await infer.json()).toMatchObject({ model_name: 'classifier' });

      const model = await until('the ingested model', async () => {
        const body = (await (await fetch(`${api}/api/v1/models`)).json()) as {
          models: { name: string; rows: number; requests: number; versions: string[] }[];
        };
        const m = body.models.find((x) => x.name === 'classifier');
        // Rows and request records are separate inserts: wait for both.
        return m !== undefined && m.rows === 3 && m.requests === 1 ? m : undefined;
      });
      expect(model).toMatchObject({ requests: 1, rows: 3, versions: ['1'] });

      const labels = await fetch(`${api}/api/v1/labels`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ labels: [{ request_id: 'up-req-1', row: 2, label: 1 }] }),
      });
      expect(labels.status).toBe(202);
      const preds = (await (await fetch(`${api}/api/v1/models/classifier/predictions`)).json()) as {
        predictions: {
          request_id: string;
          row: number;
          version: string;
          features: Record<string, number>;
          label: string | null;
        }[];
      };
      expect(preds.predictions.map((p) => [p.request_id, p.row, p.label])).toEqual([
        ['up-req-1', 0, null],
        ['up-req-1', 1, null],
        ['up-req-1', 2, '1'],
      ]);
      expect(Object.values(preds.predictions[2]?.features ?? {})).toEqual([-1, 2, -3, 4]);

      // Every role registers on the one process registry; the whole exposition passes promtool's lint.
      const metrics = await (await fetch(`${api}/metrics`)).text();
      expect(metrics).toMatch(/^modelwatch_api_requests_total\{/m);
      expect(metrics).toMatch(/^modelwatch_ingest_rows_inserted_total 3$/m);
      expect(metrics).toMatch(/^modelwatch_tee_captured_total(\{[^}]*\})? 1$/m);
      const lint = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
      expect(lint.stdout + lint.stderr).toBe('');
      expect(lint.status).toBe(0);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).not.toMatch(/"level":"error"/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
