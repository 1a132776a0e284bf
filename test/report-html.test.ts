// `modelwatch report --format html` opened in headless Chromium (Debian chromium + playwright-core): no
// console errors, no page errors, no requests other than the file itself, the summary and one SVG per
// feature, and strings from the data (a `<script>` column name, an `<img onerror>` category) shown as text.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './support/report-files.js';

const XSS_COLUMN = '<script>alert(1)</script>';
const XSS_CATEGORY = '<img src=x onerror=alert(2)>';

let dir: string;
let browser: Browser;

function csvField(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** 600 rows: a shifted numeric column (drifts), a stable one, and a categorical one with hostile values. */
function table(rows: number, shift: number): string {
  const lines = [['shifted', 'stable', XSS_COLUMN].map(csvField).join(',')];
  for (let i = 0; i < rows; i++) {
    const u = ((i * 7919) % rows) / rows;
    const cat = [XSS_CATEGORY, 'plain', 'other "quoted" & <b>bold</b>'][i % 3]!;
    lines.push([(u * 10 + shift).toFixed(4), ((i * 31) % 97).toString(), csvField(cat)].join(','));
  }
  return lines.join('\n') + '\n';
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mw-report-html-'));
  writeFileSync(join(dir, 'reference.csv'), table(600, 0));
  writeFileSync(join(dir, 'current.csv'), table(500, 3));
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('modelwatch report --format html', () => {
  it('is one self-contained page that renders without errors or network access and escapes data', async () => {
    const out = join(dir, 'report.html');
    const res = await runCli([
      'report',
      '--reference',
      join(dir, 'reference.csv'),
      '--current',
      join(dir, 'current.csv'),
      '--format',
      'html',
      '--out',
      out,
    ]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const html = readFileSync(out, 'utf8');
    // Self-contained: no external resources referenced at all.
    expect(html).not.toMatch(/<(?:link|img|iframe)\b/i);
    expect(html).not.toMatch(/\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i);
    expect(html).not.toContain(XSS_COLUMN);
    expect(html).not.toContain(XSS_CATEGORY);

    const context = await browser.newContext({ javaScriptEnabled: true });
    const page = await context.newPage();
    const fileUrl = pathToFileURL(out).href;
    const consoleErrors: string[] = [];
    const pageErrors: string[] = [];
    const dialogs: string[] = [];
    const foreign: string[] = [];
    let requests = 0;
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await context.route('**/*', async (route) => {
      requests++;
      if (route.request().url() === fileUrl) await route.continue();
      else {
        foreign.push(route.request().url());
        await route.abort();
      }
    });
    await page.goto(fileUrl, { waitUntil: 'load' });

    await expect.poll(() => page.locator('#summary').isVisible()).toBe(true);
    const summary = await page.locator('#summary').innerText();
    expect(summary).toMatch(/drifted features\s+1 \/ 3/);
    expect(summary).toMatch(/reference rows\s+600/);
    expect(summary).toMatch(/current rows\s+500/);
    expect(await page.locator('#verdict').innerText()).toBe('No dataset drift');
    expect(await page.locator('svg.hist').count()).toBe(3);
    // Each plot has bars for both samples.
    for (const svg of await page.locator('svg.hist').all()) {
      expect(await svg.locator('rect.ref').count()).toBeGreaterThan(1);
      expect(await svg.locator('rect.cur').count()).toBeGreaterThan(1);
    }
    // Table sorted by drift: the shifted column first and flagged.
    const firstRow = page.locator('#features tbody tr').first();
    expect(await firstRow.locator('td').first().innerText()).toBe('shifted');
    expect(await firstRow.getAttribute('data-drifted')).toBe('true');
    expect(await page.locator('#features tbody tr').count()).toBe(3);
    // Hostile strings render as text: the column name appears literally, no script or img element came of them.
    await expect.poll(() => page.getByText(XSS_COLUMN, { exact: true }).count()).toBeGreaterThan(0);
    expect(await page.locator('main script').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
    const svgText = await page.locator('svg.hist').allTextContents();
    expect(svgText.join(' ')).toContain(XSS_CATEGORY.slice(0, 13));
    // The inline filter script works (and ran without errors).
    await page.locator('#only-drifted').check();
    expect(await page.locator('#features tbody tr:visible').count()).toBe(1);
    expect(await page.locator('svg.hist:visible').count()).toBe(1);
    // The embedded report JSON parses back to the same numbers.
    const embedded = JSON.parse((await page.locator('#report-data').textContent()) ?? '') as {
      features: { name: string }[];
    };
    expect(embedded.features.map((f) => f.name).sort()).toEqual([XSS_COLUMN, 'shifted', 'stable'].sort());

    expect(consoleErrors).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(dialogs).toEqual([]);
    expect(foreign).toEqual([]);
    expect(requests).toBe(1);
    await context.close();
  });
});
