import { errorMessage, isModelwatchError } from '../../common/errors.js';
import { parseTime } from '../../common/time.js';
import { loadConfig } from '../../config/load.js';
import { FileFormats, type FileFormat } from '../../drift/files.js';
import {
  activateReference,
  activeReferenceId,
  applyConfiguredReference,
  createReference,
  listReferences,
  type ReferenceInfo,
} from '../../drift/reference.js';
import { openStore } from '../../store/open.js';
import type { ClickHouseStore } from '../../store/index.js';
import { UsageError, parseFlags, type Command } from '../command.js';

const usage = `modelwatch reference create --model M (--from T --to T | --file F [--format FMT]) [--no-activate] [--config FILE]
modelwatch reference list --model M [--config FILE]
modelwatch reference activate --model M --id ID [--config FILE]
  create     store a reference from the model's successful traffic in [--from, --to) (ISO-8601 or epoch ms),
             or from a file (.csv .tsv .parquet .jsonl .ndjson; --format names a ClickHouse input format), and
             make it the model's active reference unless --no-activate
  list       the model's references, newest first, the active one marked
  activate   make a stored reference (--id) the one detection uses
  --config FILE   YAML or JSON config file (default: $MODELWATCH_CONFIG); the store is clickhouse.url
Prints JSON on stdout. Exit status 0 on success, 2 on an error (one line on stderr).`;

function summary(ref: ReferenceInfo, active: boolean): Record<string, unknown> {
  const { profile: _profile, ...rest } = ref;
  return { ...rest, active };
}

async function withStore<T>(configFile: string | undefined, fn: (store: ClickHouseStore) => Promise<T>): Promise<T> {
  const config = loadConfig({ file: configFile });
  const store = await openStore(config);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** `modelwatch reference create|list|activate`: pin, list and choose a model's drift reference in the configured store. */
export const referenceCommand: Command = {
  summary: "pin, list and activate a model's drift reference (traffic window or file)",
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === '-h' || sub === '--help') {
      process.stdout.write(`usage: ${usage}\n`);
      return sub === undefined ? 2 : 0;
    }
    if (sub !== 'create' && sub !== 'list' && sub !== 'activate') {
      throw new UsageError(`unknown subcommand '${sub}' (expected create, list or activate)`, usage);
    }
    const { help, values } = parseFlags(
      rest,
      {
        model: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        file: { type: 'string' },
        format: { type: 'string' },
        id: { type: 'string' },
        'no-activate': { type: 'boolean' },
        config: { type: 'string' },
      },
      usage,
    );
    if (help) {
      process.stdout.write(`usage: ${usage}\n`);
      return 0;
    }
    const model = values.model;
    if (model === undefined || model === '') throw new UsageError('--model is required', usage);
    const format = values.format;
    if (format !== undefined && !(FileFormats as readonly string[]).includes(format)) {
      throw new UsageError(`--format must be one of ${FileFormats.join(', ')}`, usage);
    }
    if (sub === 'create') {
      const window = values.from !== undefined || values.to !== undefined;
      if (window === (values.file !== undefined)) throw new UsageError('give either --from and --to, or --file', usage);
      if (window && (values.from === undefined || values.to === undefined))
        throw new UsageError('--from and --to go together', usage);
    }
    if (sub === 'activate' && values.id === undefined) throw new UsageError('--id is required', usage);
    try {
      const out = await withStore(values.config, async (store) => {
        if (sub === 'list') {
          const configured = loadConfig({ file: values.config }).models[model]?.reference;
          if (configured !== undefined) await applyConfiguredReference(store, model, configured);
          return { model, references: await listReferences(store, model) };
        }
        if (sub === 'activate') return summary(await activateReference(store, model, values.id ?? ''), true);
        const activate = values['no-activate'] !== true;
        const ref =
          values.file !== undefined
            ? await createReference(
                store,
                { model, file: values.file, format: format as FileFormat | undefined },
                { activate },
              )
            : await createReference(
                store,
                { model, from: parseTime(values.from ?? '', 'from'), to: parseTime(values.to ?? '', 'to') },
                { activate, now: Date.now() },
              );
        return summary(ref, (await activeReferenceId(store, model)) === ref.id);
      });
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return 0;
    } catch (err: unknown) {
      const msg = isModelwatchError(err) ? err.message : errorMessage(err);
      process.stderr.write(`modelwatch reference: ${msg.replace(/\s*\n\s*/g, ' ')}\n`);
      return 2;
    }
  },
};
