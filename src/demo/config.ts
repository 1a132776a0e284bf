/**
 * The demo's configuration: the usual file and `MODELWATCH_*` variables, with demo defaults underneath
 * (a store of its own, a short detection cadence, quick alert timings, the demo model's schema). A
 * setting the user gave through the environment or the config file wins over a demo default.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { EnvVars, loadConfig } from '../config/load.js';
import { configSchema, type Config } from '../config/schema.js';
import type { DemoCadence } from './timeline.js';
import { DEMO_MODEL, demoModelSchema } from './scenario.js';

/** Inputs of {@link demoConfig}. */
export interface DemoConfigOptions {
  /** Config file (`--config`, else `MODELWATCH_CONFIG`). */
  file?: string | undefined;
  /** Environment to read. @default process.env */
  env?: Record<string, string | undefined>;
  /** The demo's working folder (store, candidate models), relative to the current directory. */
  workDir: string;
  /** Base URL of the demo model server: the sidecar's upstream. */
  modelServerUrl: string;
  /** Detection cadence fitted to the story. */
  cadence: DemoCadence;
}

/** What {@link demoConfig} resolved. */
export interface DemoConfig {
  config: Config;
  /** Folder the candidate model is written to (the configured `shadow.modelDir` when there is one). */
  candidateDir: string;
  /** Demo defaults left out because this build's config has no such key (e.g. `alerts.groupWaitMs`). */
  unsupported: string[];
}

type Tree = Record<string, unknown>;

function setPath(target: Tree, path: string, value: unknown): Tree {
  const parts = path.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[p] = {};
    node = node[p] as Tree;
  }
  node[parts[parts.length - 1] as string] = value;
  return target;
}

function getPath(source: unknown, path: string): unknown {
  let node = source;
  for (const p of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    node = (node as Tree)[p];
  }
  return node;
}

/** True when this build's config schema accepts `path` (keys other helpers add may be missing). */
function knownKey(path: string, value: unknown): boolean {
  return configSchema.safeParse(setPath({}, path, value)).success;
}

function readFileTree(file: string | undefined): Tree {
  if (file === undefined || file === '') return {};
  try {
    const parsed: unknown = parseYaml(readFileSync(file, 'utf8'));
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Tree) : {};
  } catch {
    // loadConfig reports an unreadable or invalid file with the right message.
    return {};
  }
}

/**
 * Loads the config for `modelwatch demo`. Demo defaults, each applied only when neither the environment
 * nor the config file sets it: `clickhouse.url` = `chdb:<workDir>/chdb`, `logLevel` = `warn` (the
 * terminal shows the demo's progress; logs go to stderr), the detection cadence, `alerts.evaluateIntervalMs`
 * 2 s and, where this build has them, `alerts.groupWaitMs` 2 s, `alerts.groupIntervalMs` 10 s and
 * `shadow.modelDir` = `<workDir>/candidates`. Always set: `sidecar.upstream` (the demo's own model server)
 * and the demo model's schema.
 */
export function demoConfig(options: DemoConfigOptions): DemoConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env.MODELWATCH_CONFIG;
  const fromFile = readFileTree(file);
  const envOf = new Map<string, string>(Object.entries(EnvVars).map(([k, path]) => [path, k]));
  const userSet = (path: string): boolean => {
    const key = envOf.get(path);
    if (key !== undefined && (env[key] ?? '') !== '') return true;
    return getPath(fromFile, path) !== undefined;
  };
  const candidateDefault = join(options.workDir, 'candidates');
  const defaults: [string, unknown][] = [
    ['clickhouse.url', `chdb:${join(options.workDir, 'chdb')}`],
    ['logLevel', 'warn'],
    ['detect.intervalMs', options.cadence.intervalMs],
    ['detect.windowMs', options.cadence.windowMs],
    ['alerts.evaluateIntervalMs', 2_000],
    ['alerts.groupWaitMs', 2_000],
    ['alerts.groupIntervalMs', 10_000],
    ['shadow.modelDir', candidateDefault],
  ];
  const overrides: Record<string, unknown> = {
    'sidecar.upstream': options.modelServerUrl,
    [`models.${DEMO_MODEL}`]: demoModelSchema(),
  };
  const unsupported: string[] = [];
  for (const [path, value] of defaults) {
    if (userSet(path)) continue;
    if (!knownKey(path, value)) {
      unsupported.push(path);
      continue;
    }
    overrides[path] = value;
  }
  const config = loadConfig({ file, env, overrides });
  const dir = getPath(config, 'shadow.modelDir');
  return { config, candidateDir: typeof dir === 'string' && dir !== '' ? dir : candidateDefault, unsupported };
}
