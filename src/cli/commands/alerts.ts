import { loadConfig } from '../../config/load.js';
import { UsageError, parseFlags, type Command } from '../command.js';

// `modelwatch alerts list` and `modelwatch silence add|list|expire`: clients of the running API (the
// embedded store is held by the serving process, so the CLI goes through the API, as a user would).

const alertsUsage = `modelwatch alerts list [--state active|pending|firing|resolved] [--model NAME] [--json] [--api URL] [--config FILE]
  --state S     only alerts in this state (active = pending or firing; default: all)
  --model NAME  only this model's alerts
  --json        print the API's JSON instead of a table
  --api URL     modelwatch API base URL (default: http://<api.listen> from the config)
  --config FILE YAML or JSON config file (default: $MODELWATCH_CONFIG); api.token is sent when set`;

const silenceUsage = `modelwatch silence add --matcher NAME=VALUE [--matcher NAME=~REGEX …] (--duration 2h | --ends TIME) --comment TEXT [--author NAME]
modelwatch silence list [--json]
modelwatch silence expire ID
  common flags: --api URL, --config FILE (as for modelwatch alerts)`;

interface ApiTarget {
  base: string;
  token: string | undefined;
}

function target(api: string | undefined, configFile: string | undefined): ApiTarget {
  const config = loadConfig({ file: configFile });
  return { base: (api ?? `http://${config.api.listen}`).replace(/\/+$/, ''), token: config.api.token };
}

async function call(t: ApiTarget, method: string, path: string, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (t.token) headers['authorization'] = `Bearer ${t.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${t.base}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const msg = (json as { error?: { message?: string } } | undefined)?.error?.message ?? `HTTP ${res.status}`;
    throw new Error(`${method} ${path}: ${msg}`);
  }
  return json;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `name=value`, `name!=value`, `name=~regex`, `name!~regex`. */
export function parseMatcher(
  text: string,
  usage: string,
): { name: string; value: string; isRegex: boolean; isEqual: boolean } {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(=~|!~|!=|=)(.*)$/.exec(text.trim());
  if (!m)
    throw new UsageError(
      `--matcher: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX, got '${text}'`,
      usage,
    );
  const op = m[2] as string;
  return { name: m[1] as string, value: m[3] as string, isRegex: op.endsWith('~'), isEqual: op.startsWith('=') };
}

function fail(cmd: string, err: unknown): number {
  process.stderr.write(`modelwatch ${cmd}: ${err instanceof Error ? err.message : String(err)}\n`);
  return 1;
}

/** `modelwatch alerts list`. */
export const alertsCommand: Command = {
  summary: 'list active and recent alerts (through the API)',
  usage: alertsUsage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === '-h' || sub === '--help') {
      process.stdout.write(`usage: ${alertsUsage}\n`);
      return 0;
    }
    if (sub !== 'list') throw new UsageError(`expected 'list', got '${sub ?? ''}'`, alertsUsage);
    const { help, values } = parseFlags(
      rest,
      {
        state: { type: 'string' },
        model: { type: 'string' },
        json: { type: 'boolean' },
        api: { type: 'string' },
        config: { type: 'string' },
      },
      alertsUsage,
    );
    if (help) {
      process.stdout.write(`usage: ${alertsUsage}\n`);
      return 0;
    }
    const q = new URLSearchParams();
    if (values.state) q.set('state', values.state);
    if (values.model) q.set('model', values.model);
    try {
      const res = (await call(target(values.api, values.config), 'GET', `/api/v1/alerts?${q.toString()}`)) as {
        alerts: {
          id: string;
          state: string;
          severity: string;
          rule: string;
          model: string;
          labels: Record<string, string>;
          startsAt: string | null;
          activeAt: string;
          annotations: Record<string, string>;
        }[];
      };
      if (values.json === true) {
        process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        return 0;
      }
      const rows = [['STATE', 'SEVERITY', 'MODEL', 'RULE', 'LABELS', 'SINCE', 'ID']];
      for (const a of res.alerts) {
        const extra = Object.entries(a.labels)
          .filter(([k]) => !['alertname', 'model', 'severity'].includes(k))
          .map(([k, v]) => `${k}=${v}`)
          .join(',');
        rows.push([a.state, a.severity, a.model, a.rule, extra || '-', a.startsAt ?? a.activeAt, a.id]);
      }
      process.stdout.write(table(rows));
      return 0;
    } catch (err) {
      return fail('alerts', err);
    }
  },
};

/** `modelwatch silence add|list|expire`. */
export const silenceCommand: Command = {
  summary: 'add, list or expire alert silences (through the API)',
  usage: silenceUsage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === '-h' || sub === '--help') {
      process.stdout.write(`usage: ${silenceUsage}\n`);
      return 0;
    }
    const common = { api: { type: 'string' }, config: { type: 'string' } } as const;
    try {
      if (sub === 'add') {
        const { help, values } = parseFlags(
          rest,
          {
            ...common,
            matcher: { type: 'string', multiple: true },
            duration: { type: 'string' },
            ends: { type: 'string' },
            comment: { type: 'string' },
            author: { type: 'string' },
          },
          silenceUsage,
        );
        if (help) {
          process.stdout.write(`usage: ${silenceUsage}\n`);
          return 0;
        }
        const matchers = (values.matcher ?? []).map((m) => parseMatcher(m, silenceUsage));
        if (matchers.length === 0) throw new UsageError('at least one --matcher is required', silenceUsage);
        if (!values.comment) throw new UsageError('--comment is required', silenceUsage);
        let endsAt: string;
        if (values.ends !== undefined) endsAt = values.ends;
        else {
          const d = DURATION.exec(values.duration ?? '');
          if (!d) throw new UsageError('--duration (e.g. 2h, 30m) or --ends TIME is required', silenceUsage);
          endsAt = new Date(Date.now() + Number(d[1]) * (UNIT[d[2] as string] ?? 1)).toISOString();
        }
        const res = (await call(target(values.api, values.config), 'POST', '/api/v1/silences', {
          matchers,
          endsAt,
          comment: values.comment,
          ...(values.author ? { createdBy: values.author } : {}),
        })) as { id: string };
        process.stdout.write(`${res.id}\n`);
        return 0;
      }
      if (sub === 'list') {
        const { help, values } = parseFlags(rest, { ...common, json: { type: 'boolean' } }, silenceUsage);
        if (help) {
          process.stdout.write(`usage: ${silenceUsage}\n`);
          return 0;
        }
        const res = (await call(target(values.api, values.config), 'GET', '/api/v1/silences')) as {
          silences: {
            id: string;
            state: string;
            matchers: { name: string; value: string; isRegex?: boolean; isEqual?: boolean }[];
            endsAt: string;
            comment: string;
            createdBy: string;
          }[];
        };
        if (values.json === true) {
          process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
          return 0;
        }
        const rows = [['ID', 'STATE', 'MATCHERS', 'ENDS', 'BY', 'COMMENT']];
        for (const s of res.silences) {
          const m = s.matchers
            .map(
              (x) =>
                `${x.name}${x.isEqual === false ? '!' : '='}${x.isRegex === true ? '~' : x.isEqual === false ? '=' : ''}${x.value}`,
            )
            .join(',');
          rows.push([s.id, s.state, m, s.endsAt, s.createdBy || '-', s.comment]);
        }
        process.stdout.write(table(rows));
        return 0;
      }
      if (sub === 'expire') {
        const [id, ...flags] = rest;
        if (id === undefined || id.startsWith('-')) throw new UsageError('expire needs a silence ID', silenceUsage);
        const { values } = parseFlags(flags, common, silenceUsage);
        await call(target(values.api, values.config), 'DELETE', `/api/v1/silences/${encodeURIComponent(id)}`);
        process.stdout.write(`expired ${id}\n`);
        return 0;
      }
    } catch (err) {
      if (err instanceof UsageError) throw err;
      return fail('silence', err);
    }
    throw new UsageError(`expected add, list or expire, got '${sub ?? ''}'`, silenceUsage);
  },
};
