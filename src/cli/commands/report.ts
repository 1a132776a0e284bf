import { writeFileSync } from 'node:fs';
import { errorMessage, isModelwatchError } from '../../common/errors.js';
import { UsageError, parseFlags, type Command } from '../command.js';
import { reportMultivariateSettings } from '../../drift/report/multivariate.js';
import { runFileReport } from '../../drift/report/run.js';
import { EnvVars, loadConfig } from '../../config/load.js';
import { mark, stageSync } from '../../drift/exact/profile.js';
import type { MultivariateSettings } from '../../drift/mv-detect.js';
import { DefaultRoleLimits, type RoleLimits } from '../../store/port.js';
import { ReportReaders, type ReportReader } from '../../drift/small/sides.js';

/** Environment variable choosing the report's reader when `--reader` is not given (`auto` or `engine`). */
export const READER_ENV = 'MODELWATCH_REPORT_READER';

const usage = `modelwatch report --reference FILE --current FILE [--format json|html] [--out FILE] [--categorical a,b] [--columns a,b,c] [--config FILE]
  --reference FILE     baseline data: .csv .tsv .parquet .jsonl .ndjson (read through ClickHouse file formats)
  --current FILE       data to compare with it (same formats)
  --format json|html   the DESIGN §2 drift report as JSON, or one self-contained HTML page (default json)
  --out FILE           write the report to FILE instead of stdout
  --categorical a,b    treat these columns as categorical whatever their inferred type
  --columns a,b,c      compare only these columns
  --config FILE        config file (default: $MODELWATCH_CONFIG); only clickhouse.roles.report is used
  --reader auto|engine auto (default, or $MODELWATCH_REPORT_READER): two small Parquet files of plain column
                       types are read without starting the engine, same report; engine: always the engine
Exit status 0 when the report was made, drift or not; 2 on an error (one line on stderr).`;

function list(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** What `modelwatch report` takes from the configuration. */
export interface ReportSettings {
  /** Deadline and memory cap of each statement (`clickhouse.roles.report`). */
  limits: RoleLimits;
  /** The multivariate section's settings (`multivariate`). */
  multivariate: MultivariateSettings;
}

/**
 * The report's settings from the configuration: the config file (`file`, else `MODELWATCH_CONFIG`) and the
 * `MODELWATCH_*` variables, validated as every command validates them. With neither, the configuration is
 * all defaults, and they are returned without validating the whole (empty) configuration first, which
 * costs a few tens of milliseconds at start-up: the same values, as a test checks.
 */
export function reportSettings(
  file: string | undefined,
  env: Record<string, string | undefined> = process.env,
): ReportSettings {
  const configured =
    (file !== undefined && file !== '') ||
    Object.keys(EnvVars).some((key) => env[key] !== undefined && env[key] !== '');
  if (!configured) {
    return { limits: { ...DefaultRoleLimits.report }, multivariate: reportMultivariateSettings() };
  }
  const config = loadConfig({ file, env });
  return { limits: config.clickhouse.roles.report, multivariate: reportMultivariateSettings(config) };
}

/** `modelwatch report`: the offline drift and data-quality report over two files (DESIGN §2). */
export const reportCommand: Command = {
  summary: 'offline drift + data-quality report over CSV/TSV/Parquet/JSONL files',
  usage,
  async run(argv) {
    const { help, values } = parseFlags(
      argv,
      {
        reference: { type: 'string' },
        current: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        categorical: { type: 'string' },
        columns: { type: 'string' },
        config: { type: 'string' },
        reader: { type: 'string' },
      },
      usage,
    );
    if (help) {
      process.stdout.write(`usage: ${usage}\n`);
      return 0;
    }
    if (values.reference === undefined || values.current === undefined) {
      throw new UsageError('--reference and --current are required', usage);
    }
    const format = values.format ?? 'json';
    if (format !== 'json' && format !== 'html')
      throw new UsageError(`--format must be json or html, got '${format}'`, usage);
    const reader = values.reader ?? process.env[READER_ENV] ?? '';
    if (reader !== '' && !(ReportReaders as readonly string[]).includes(reader)) {
      const from = values.reader !== undefined ? '--reader' : READER_ENV;
      throw new UsageError(`${from} must be ${ReportReaders.join(' or ')}, got '${reader}'`, usage);
    }
    try {
      // Deadline and memory cap of each statement (`clickhouse.roles.report`).
      mark('report command start', 0);
      const { limits, multivariate } = stageSync('load config', () => reportSettings(values.config));
      const result = await runFileReport({
        limits,
        multivariate,
        reference: values.reference,
        current: values.current,
        format,
        categorical: list(values.categorical) ?? [],
        columns: list(values.columns),
        reader: reader === '' ? 'auto' : (reader as ReportReader),
        progress: (line) => process.stderr.write(`modelwatch report: ${line}\n`),
      });
      stageSync('write report', () => {
        const text = format === 'html' ? (result.html ?? '') : JSON.stringify(result.report, null, 2) + '\n';
        if (values.out !== undefined) writeFileSync(values.out, text);
        else process.stdout.write(text);
      });
      return 0;
    } catch (err: unknown) {
      // Input problems (missing/empty/unreadable file, mismatched or unknown columns) are the user's to fix:
      // one line, exit 2, like other usage errors.
      const msg = isModelwatchError(err) ? err.message : errorMessage(err);
      process.stderr.write(`modelwatch report: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
      return 2;
    }
  },
};
