import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import type { ClickHouseStore } from '../src/store/index.js';
import { openTestStore } from './support/store.js';
import { selectRows } from './support/store.js';

let store: ClickHouseStore;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ store, cleanup } = await openTestStore());
});
afterAll(async () => cleanup());

interface Panel {
  title: string;
  targets: { rawSql: string }[];
}

// Grafana ClickHouse datasource macros, expanded the way the plugin does for a concrete range.
function expandMacros(sql: string): string {
  return sql
    .replace(/\$__timeFilter\(([^)]+)\)/g, "$1 >= toDateTime64('2026-01-01 00:00:00', 3) AND $1 <= toDateTime64('2026-01-02 00:00:00', 3)")
    .replace(/\$__timeInterval\(([^)]+)\)/g, 'toStartOfInterval($1, INTERVAL 60 second)')
    .replace(/\$__interval_s/g, '60')
    .replace(/\$\{model\}/g, 'demo');
}

describe('deployment stack', () => {
  it('docker-compose.yml validates with docker-compose and names every role', () => {
    const out = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { encoding: 'utf8' });
    const doc = parseYaml(out) as { services: Record<string, { command?: string[] }> };
    expect(Object.keys(doc.services).sort()).toEqual(
      ['api', 'clickhouse', 'detect', 'grafana', 'ingest', 'kafka', 'prometheus', 'sidecar'].sort(),
    );
    expect(doc.services.ingest?.command).toEqual(['ingest']);
  });

  it('every Grafana dashboard query runs against the migrated schema', async () => {
    const dir = 'grafana/dashboards';
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    let queries = 0;
    for (const f of files) {
      const dash = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8')) as { panels: Panel[] };
      for (const p of dash.panels) {
        for (const t of p.targets) {
          const rs = selectRows(store, { query: expandMacros(t.rawSql), format: 'JSONEachRow' });
          expect(Array.isArray(await rs.json()), `${f}: ${p.title}`).toBe(true);
          queries++;
        }
      }
    }
    expect(queries).toBeGreaterThanOrEqual(6);
  });
});
