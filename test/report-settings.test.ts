// What `modelwatch report` takes from the configuration (reportSettings): the defaults it returns without
// validating an empty configuration are exactly what loading that configuration gives, and a config file or
// a MODELWATCH_* variable still goes through the full load and its validation.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { reportSettings } from '../src/cli/commands/report.js';
import { loadConfig } from '../src/config/load.js';
import { reportMultivariateSettings } from '../src/drift/report/multivariate.js';
import { isModelwatchError } from '../src/common/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'mw-report-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('reportSettings', () => {
  it('without a file or variable, equals the settings of the loaded (all-default) configuration', () => {
    const config = loadConfig({ env: {} });
    const expected = {
      limits: config.clickhouse.roles.report,
      multivariate: reportMultivariateSettings(config),
    };
    expect(reportSettings(undefined, {})).toStrictEqual(expected);
    // Empty variables count as unset, as in loadConfig.
    expect(reportSettings('', { MODELWATCH_CONFIG: '', MODELWATCH_SAMPLING: '' })).toStrictEqual(expected);
    // Unrelated variables do not matter.
    expect(reportSettings(undefined, { HOME: '/root', PATH: '/bin' })).toStrictEqual(expected);
  });

  it('reads the config file given or named by MODELWATCH_CONFIG', () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      'clickhouse:\n  roles:\n    report:\n      timeoutMs: 5000\n      maxMemoryBytes: 1000000\nmultivariate:\n  maxRows: 500\n',
    );
    for (const s of [reportSettings(file, {}), reportSettings(undefined, { MODELWATCH_CONFIG: file })]) {
      expect(s.limits).toStrictEqual({ timeoutMs: 5000, maxMemoryBytes: 1_000_000 });
      expect(s.multivariate.maxRows).toBe(500);
    }
  });

  it('validates the configuration when a MODELWATCH_* variable is set, as every command does', () => {
    let caught: unknown;
    try {
      reportSettings(undefined, { MODELWATCH_SAMPLING: 'often' });
    } catch (err) {
      caught = err;
    }
    expect(isModelwatchError(caught)).toBe(true);
    expect((caught as Error).message).toMatch(/MODELWATCH_SAMPLING/);
  });

  it('reports a missing config file', () => {
    expect(() => reportSettings(join(dir, 'missing.yaml'), {})).toThrow(/missing\.yaml/);
  });
});
