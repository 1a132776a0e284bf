// The web UI in headless Chromium (Debian chromium + playwright-core) against the real API on embedded
// ClickHouse filled by the test and one detection pass per model: the fleet overview and a model page render
// their charts with data (canvases of non-zero size with drawn pixels) and tables (rows of the models, drift
// sorted most-drifted first), without console errors, without any request leaving loopback; the silence form
// works (or, while the server has no silences route, the panel says not available); a token-protected server
// asks for the token once and keeps it for the session. Screenshots go to test/output/ui/.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type RunningApi } from '../src/api/index.js';
import { runDetectionOnce } from '../src/drift/detector.js';
import type { RuntimeContext } from '../src/runtime/context.js';
import type { ClickHouseStore, PredictionRow, RequestRow } from '../src/store/index.js';
import { apiTestContext } from './support/api.js';
import { gaussian, mulberry32 } from './support/seeded-prng.js';
import { openTestStore } from './support/store.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const OUT = join(import.meta.dirname, 'output', 'ui');
const TOKEN = 'ui-test-token-5f2c';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// Minute-aligned so the page's buckets (it rounds "now" up to the minute) line up with the data.
const NOW = Math.floor(Date.now() / MIN) * MIN;
const models = {
  churn: { task: 'binary', prediction: { tensor: 'prob' } },
  fraud: { task: 'binary', prediction: { tensor: 'prob' } },
};

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
let ctx: RuntimeContext;
let api: RunningApi;
let secured: RunningApi;
let profileDir: string;
let browser: BrowserContext;
let documented: Set<string>;

const rnd = mulberry32(7);
const g = gaussian(rnd);

/** `n` one-row calls of `model` spread over [start, start + spanMs); x_0 shifted by `shift`; every other row labelled. */
async function traffic(
  model: string,
  start: number,
  spanMs: number,
  n: number,
  shift: number,
  latencyMs: number,
  errorEvery: number,
): Promise<void> {
  const preds: PredictionRow[] = [];
  const reqs: RequestRow[] = [];
  const labels: Array<{ request_id: string; row: number; label: string }> = [];
  for (let i = 0; i < n; i++) {
    const ts = start + Math.floor((i * spanMs) / n);
    const id = `${model}-${ts}-${i}`;
    const failed = i % errorEvery === 0;
    reqs.push({
      model,
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      source: 'rest',
      route: `/v2/models/${model}/infer`,
      status: failed ? 500 : 200,
      latency_ms: latencyMs * (1 + 0.1 * Math.abs(g())),
      request_bytes: 100,
      response_bytes: 50,
      request_truncated: false,
      response_truncated: false,
      rows: failed ? 0 : 1,
      error: failed ? 'upstream 500' : '',
    });
    if (failed) continue;
    const p = rnd();
    preds.push({
      model,
      version: '1',
      ts,
      event_id: id,
      request_id: id,
      row: 0,
      features_num: { x_0: shift + g(), x_1: g() },
      features_cat: { plan: rnd() < (shift > 0 ? 0.7 : 0.3) ? 'pro' : 'free' },
      outputs_num: { prob_0: p },
      outputs_cat: {},
    });
    if (i % 2 === 0) labels.push({ request_id: id, row: 0, label: rnd() < p ? '1' : '0' });
  }
  await store.insertPredictions(preds);
  await store.insertRequests(reqs);
  await store.insertLabels(labels);
}

interface PageWatch {
  errors: string[];
  foreign: string[];
  requests: string[];
}

/** Records console errors/warnings, page errors and every request; requests off loopback are aborted and listed. */
function watch(page: Page): PageWatch {
  const w: PageWatch = { errors: [], foreign: [], requests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') w.errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => w.errors.push(`pageerror: ${e.message}`));
  page.on('request', (r) => w.requests.push(r.url()));
  return w;
}

// Browser globals used inside functions run in the page (the test program is type-checked without the DOM
// library; functions, unlike strings, are not blocked by the page's CSP, which forbids eval).
interface PageNode {
  textContent: string | null;
  hidden: boolean;
  open: boolean;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): PageNode | null;
  querySelectorAll(selector: string): ArrayLike<PageNode> & Iterable<PageNode>;
}
interface PageCanvas {
  width: number;
  height: number;
  getContext(
    kind: '2d',
  ): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}
declare const document: {
  body: PageNode;
  createElement(tag: 'canvas'): PageCanvas & {
    getContext(
      kind: '2d',
      options: { willReadFrequently: boolean },
    ): { drawImage(c: PageCanvas, x: number, y: number): void } | null;
  };
  querySelector(selector: string): PageNode | null;
  querySelectorAll<T = PageNode>(selector: string): ArrayLike<T> & Iterable<T>;
};
declare const sessionStorage: { getItem(key: string): string | null };

/** Size and non-transparent pixels of every canvas under `selector` (uPlot draws series on its canvas). */
async function canvases(page: Page, selector: string): Promise<Array<{ w: number; h: number; inked: number }>> {
  return page.evaluate(
    (sel) =>
      [...document.querySelectorAll<PageCanvas>(sel)].map((c) => {
        // Read a copy, so the page's own canvases never get Chromium's repeated-readback warning.
        const copy = document.createElement('canvas');
        copy.width = c.width;
        copy.height = c.height;
        copy.getContext('2d', { willReadFrequently: true })?.drawImage(c, 0, 0);
        const data = copy.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? [];
        let inked = 0;
        for (let i = 3; i < data.length; i += 4) if ((data[i] ?? 0) > 0) inked++;
        return { w: c.width, h: c.height, inked };
      }),
    selector,
  );
}

/** Waits until `text` of the element at `selector` satisfies `test` (a page-side check). */
async function waitText(page: Page, selector: string, pattern: RegExp): Promise<void> {
  await page.waitForFunction(([sel, src]) => new RegExp(src).test(document.querySelector(sel)?.textContent ?? ''), [
    selector,
    pattern.source,
  ] as const);
}

const modelOrder = (page: Page): Promise<Array<string | null>> =>
  page.evaluate(() => [...document.querySelectorAll('#fleet tbody tr')].map((tr) => tr.dataset.model ?? null));

async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() => document.body.dataset.loading === 'false', undefined, { timeout: 60_000 });
}

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  ({ store, cleanup } = await openTestStore());
  // churn: a reference hour (the model's first hour, so the default reference), then an hour whose x_0 and plan shift.
  await traffic('churn', NOW - 3 * HOUR, HOUR, 600, 0, 20, 50);
  await traffic('churn', NOW - HOUR, HOUR, 600, 1.5, 35, 25);
  // fraud: steady, fewer calls.
  await traffic('fraud', NOW - 3 * HOUR, 3 * HOUR, 450, 0, 8, 1000);
  ctx = apiTestContext(store, { models });
  // Stored detection runs every 30 minutes over the last 2.5 hours, so drift and performance have a history.
  for (const model of ['churn', 'fraud']) {
    for (let t = NOW - 150 * MIN; t <= NOW; t += 30 * MIN) await runDetectionOnce(ctx, { model, now: t });
  }
  api = await startApi(ctx);
  secured = await startApi(apiTestContext(store, { models, 'api.token': TOKEN }));
  const doc = (await (await fetch(`${api.url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  documented = new Set(
    Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)),
  );
  profileDir = mkdtempSync(join(tmpdir(), 'mw-ui-chromium-'));
  browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1000 },
  });
  // Nothing may leave loopback: anything else is aborted (and fails the test through the `foreign` lists).
  await browser.route('**/*', async (route) => {
    const host = new URL(route.request().url()).hostname;
    if (host === '127.0.0.1') await route.continue();
    else await route.abort('blockedbyclient');
  });
});

afterAll(async () => {
  await browser?.close();
  await api?.stop();
  await secured?.stop();
  await cleanup?.();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

function offLoopback(w: PageWatch): string[] {
  return w.requests.filter((u) => new URL(u).hostname !== '127.0.0.1');
}

describe('web UI: serving', () => {
  it('serves the page at / and every /ui deep link, the assets and uPlot from the installed package, outside the token', async () => {
    for (const path of ['/', '/ui', '/ui/', '/ui/models/churn', '/ui/alerts/a1', '/ui/silences']) {
      const res = await fetch(secured.url + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(await res.text()).toContain('<script type="module" src="/ui/assets/app.js">');
    }
    const uplotDist = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
    const js = await fetch(`${secured.url}/ui/assets/vendor/uPlot.iife.min.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(Buffer.from(await js.arrayBuffer()).equals(readFileSync(join(uplotDist, 'uPlot.iife.min.js')))).toBe(true);
    const css = await fetch(`${secured.url}/ui/assets/vendor/uPlot.min.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    const app = await fetch(`${secured.url}/ui/assets/app.js`);
    expect(app.status).toBe(200);
    const etag = app.headers.get('etag') ?? '';
    expect((await fetch(`${secured.url}/ui/assets/app.js`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(`${secured.url}/ui/assets/app.js`, { method: 'HEAD' })).status).toBe(200);
    // Only files in the assets folder: unknown names and encoded traversal are 404, other methods fall through.
    expect((await fetch(`${secured.url}/ui/assets/nope.js`)).status).toBe(404);
    expect((await fetch(`${secured.url}/ui/assets/..%2F..%2F..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${secured.url}/ui/assets/..%2Fserve.ts`)).status).toBe(404);
    expect((await fetch(`${secured.url}/`, { method: 'POST' })).status).toBe(404);
    // The page is open; the data behind it is not.
    expect((await fetch(`${secured.url}/api/v1/models`)).status).toBe(401);
  });
});

describe('web UI in Chromium', () => {
  it('fleet overview: a sortable row per model with sparklines drawn from the data', async () => {
    const page = await browser.newPage();
    const w = watch(page);
    await page.goto(`${api.url}/?range=6h`);
    await settled(page);
    await page.waitForFunction(() => document.querySelectorAll('#fleet .spark canvas').length >= 6, undefined, {
      timeout: 60_000,
    });
    expect(await modelOrder(page)).toEqual(['churn', 'fraud']);
    const churnRow = await page.textContent('#fleet tbody tr[data-model="churn"]');
    expect(churnRow).toContain('1,200'); // requests over the 6 h range
    expect(churnRow).toMatch(/drift \d+\/\d+/); // the stored run flags churn
    const sparks = await canvases(page, '#fleet .spark canvas');
    expect(sparks).toHaveLength(6);
    for (const s of sparks) {
      expect(s.w).toBeGreaterThan(0);
      expect(s.h).toBeGreaterThan(0);
      expect(s.inked).toBeGreaterThan(20);
    }
    // Sorting: requests descending puts churn (1,200) first, ascending fraud (450).
    await page.click('#fleet th[data-key="requests"]');
    expect(await modelOrder(page)).toEqual(['churn', 'fraud']);
    await page.click('#fleet th[data-key="requests"]');
    expect(await modelOrder(page)).toEqual(['fraud', 'churn']);
    expect(await page.getAttribute('#fleet th[data-key="requests"]', 'aria-sort')).toBe('ascending');
    // Sparklines survive the re-sort (the same canvases move with their row).
    expect((await canvases(page, '#fleet .spark canvas')).every((s) => s.inked > 20)).toBe(true);
    await page.screenshot({ path: join(OUT, 'overview.png'), fullPage: true });
    expect(w.errors).toEqual([]);
    expect(offLoopback(w)).toEqual([]);
    expect(w.requests.length).toBeGreaterThan(10);
    await page.close();
  });

  it('model page: traffic, latency, drift, distributions, quality and performance charts with data; absent routes say not available', async () => {
    const page = await browser.newPage();
    const w = watch(page);
    await page.goto(`${api.url}/?range=6h`);
    await settled(page);
    // Client-side navigation from the overview (the range carries over).
    await page.click('#fleet a.model-link:text("churn")');
    await page.waitForURL(/\/ui\/models\/churn\?range=6h$/);
    await settled(page);
    await page.waitForSelector('#drift-table tbody tr');
    await page.waitForSelector('#distribution-chart canvas');
    await page.waitForSelector('#performance-chart canvas');
    await page.waitForSelector('#drift-chart canvas');
    for (const sel of [
      '#traffic-chart canvas',
      '#latency-chart canvas',
      '#drift-chart canvas',
      '#distribution-chart canvas',
      '#performance-chart canvas',
    ]) {
      const [c] = await canvases(page, sel);
      expect(c, sel).toBeDefined();
      expect(c!.w, sel).toBeGreaterThan(300);
      expect(c!.h, sel).toBeGreaterThan(100);
      expect(c!.inked, sel).toBeGreaterThan(200);
    }
    // Drift table sorted most-drifted first: the shifted x_0 on top, flagged.
    const rows = await page.evaluate(() =>
      [...document.querySelectorAll('#drift-table tbody tr')].map((tr) =>
        [...tr.querySelectorAll('td')].map((td) => td.textContent?.trim() ?? ''),
      ),
    );
    expect(rows[0]?.[0]).toBe('x_0');
    expect(rows[0]?.[6]).toBe('drift');
    // x_1 is unshifted: it is listed below x_0 (its verdict is a 5%-level test's, so not asserted here).
    const x1 = rows.findIndex((r) => r[0] === 'x_1');
    expect(x1).toBeGreaterThan(0);
    expect(await page.textContent('#drift-distribution h3')).toContain('x_0: reference vs current');
    // Clicking a feature shows its own distribution.
    await page.click('#drift-table button:text("plan")');
    await waitText(page, '#drift-distribution h3', /^plan/);
    expect((await canvases(page, '#distribution-chart canvas'))[0]?.inked).toBeGreaterThan(200);
    // Summary, data quality, performance and the reference in use.
    expect(await page.textContent('#summary')).toContain('1,200');
    expect(await page.locator('#quality tbody tr').count()).toBeGreaterThanOrEqual(3);
    expect(await page.textContent('#performance-now')).toMatch(/accuracy/);
    await waitText(page, '#reference-in-use', /rows/);
    // Panels over routes this server does not list say so; those it lists render.
    const expectPanel = async (id: string, route: string): Promise<void> => {
      const text = (await page.textContent(id)) ?? '';
      if (documented.has(route)) expect(text, id).not.toContain('Not available');
      else expect(text, id).toContain('Not available');
    };
    await expectPanel('#change-points', 'GET /api/v1/models/{name}/change-points');
    await expectPanel('#multivariate', 'GET /api/v1/models/{name}/multivariate/history');
    await expectPanel('#shadow', 'GET /api/v1/shadow/runs');
    await expectPanel('#alerts', 'GET /api/v1/alerts');
    // Pinning a reference by selecting a range on the traffic chart (when the server serves it).
    if (documented.has('POST /api/v1/models/{name}/references')) {
      const over = page.locator('#traffic-chart .u-over');
      await over.scrollIntoViewIfNeeded();
      const box = (await over.boundingBox())!;
      // Inside the first hour of churn's traffic (the 6 h chart starts 3 h before it): a window with rows.
      await page.mouse.move(box.x + box.width * 0.55, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.65, box.y + box.height / 2, { steps: 5 });
      await page.mouse.up();
      await page.click('#pin-reference');
      await waitText(page, '#pin-status', /^(Pinned|Could not)/);
      expect(await page.textContent('#pin-status')).toMatch(/^Pinned/);
    } else {
      expect(await page.textContent('#reference')).toContain('Not available');
    }
    await page.screenshot({ path: join(OUT, 'model.png'), fullPage: true });
    expect(w.errors).toEqual([]);
    expect(offLoopback(w)).toEqual([]);
    await page.close();
  });

  it('deep links open directly: a model page, the alerts view, an alert', async () => {
    const page = await browser.newPage();
    const w = watch(page);
    await page.goto(`${api.url}/ui/models/fraud?range=6h`);
    await settled(page);
    expect(await page.textContent('main h1')).toBe('fraud');
    await page.waitForSelector('#traffic-chart canvas');
    await page.goto(`${api.url}/ui/alerts`);
    await settled(page);
    if (!documented.has('GET /api/v1/alerts'))
      expect(await page.textContent('#alerts-list')).toContain('Not available');
    await page.screenshot({ path: join(OUT, 'alerts.png'), fullPage: true });
    if (!documented.has('GET /api/v1/alerts/{id}')) {
      await page.goto(`${api.url}/ui/alerts/a1`);
      await settled(page);
      expect(await page.textContent('main h1')).toBe('Alert a1');
      expect(await page.textContent('#alert')).toContain('Not available');
    }
    await page.goto(`${api.url}/ui/no/such/page`);
    await settled(page).catch(() => undefined);
    expect(await page.textContent('main h1')).toBe('Not found');
    expect(w.errors).toEqual([]);
    expect(offLoopback(w)).toEqual([]);
    await page.close();
  });

  it('silences: create one with the form and expire it (or the view says not available)', async () => {
    const page = await browser.newPage();
    const w = watch(page);
    await page.goto(`${api.url}/ui/silences?model=churn`);
    await settled(page);
    if (!documented.has('GET /api/v1/silences')) {
      expect(await page.textContent('#silences')).toContain('Not available');
      expect(await page.textContent('#silence-form')).toContain('Not available');
    } else {
      expect(await page.inputValue('#matchers [name=m-value]')).toBe('churn');
      await page.fill('#new-silence [name=comment]', 'retraining churn');
      await page.fill('#new-silence [name=createdBy]', 'ui-test');
      await page.click('#create-silence');
      await waitText(page, '#silence-status', /created/);
      const row = page.locator('#silence-table tbody tr', { hasText: 'retraining churn' });
      await row.waitFor();
      expect(await row.textContent()).toContain('model="churn"');
      expect(await row.textContent()).toContain('active');
      await row.locator('button.expire').click();
      await page.waitForFunction(() =>
        [...document.querySelectorAll('#silence-table tbody tr')].some(
          (tr) => /retraining churn/.test(tr.textContent ?? '') && /expired/.test(tr.textContent ?? ''),
        ),
      );
    }
    await page.screenshot({ path: join(OUT, 'silences.png'), fullPage: true });
    expect(w.errors).toEqual([]);
    expect(offLoopback(w)).toEqual([]);
    await page.close();
  });

  it('asks for the API token once on a 401, keeps it in the session and sends it as a bearer token', async () => {
    const page = await browser.newPage();
    const w = watch(page);
    const auth: Array<string | undefined> = [];
    page.on('request', (r) => {
      if (r.url().includes('/api/v1/')) auth.push(r.headers().authorization);
    });
    await page.goto(`${secured.url}/?range=6h`);
    await page.waitForSelector('#token-dialog[open]');
    await page.fill('#token-input', 'wrong-token');
    await page.click('#token-form button[type=submit]');
    // A refused token asks again, saying so.
    await page.waitForFunction(
      () =>
        document.querySelector('#token-dialog')?.open === true &&
        document.querySelector('#token-error')?.hidden === false,
    );
    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button[type=submit]');
    await settled(page);
    await page.waitForSelector('#fleet tbody tr[data-model="churn"]');
    expect(await page.evaluate(() => sessionStorage.getItem('modelwatch.apiToken'))).toBe(TOKEN);
    // Same tab, another page: no prompt, every API call carries the token.
    auth.length = 0;
    await page.goto(`${secured.url}/ui/models/fraud?range=6h`);
    await settled(page);
    await page.waitForSelector('#traffic-chart canvas');
    expect(await page.$('#token-dialog[open]')).toBeNull();
    expect(auth.length).toBeGreaterThan(5);
    expect(auth.every((a) => a === `Bearer ${TOKEN}`)).toBe(true);
    // The only console errors are Chromium's own lines for the 401 answers that asked for the token.
    expect(w.errors.length).toBeGreaterThan(0);
    expect(w.errors.filter((e) => !/status of 401 \(Unauthorized\)/.test(e))).toEqual([]);
    expect(offLoopback(w)).toEqual([]);
    await page.close();
  });
});
