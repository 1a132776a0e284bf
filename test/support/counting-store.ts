import type { Store } from '../../src/store/index.js';

/** Statements sent through a {@link countingStore}, by kind and in order. */
export interface StatementLog {
  /**
   * One entry per statement: `query`, `insert <table>` (plain or encoded), `command`, `queryBinary`,
   * `queryBinaryView` or `queryBinaryFile`, with its label and (but for inserts) its SQL text.
   */
  entries: Array<{ kind: string; label: string; sql: string }>;
  /** Forgets what was counted so far. */
  reset(): void;
}

const COUNTED = new Set([
  'query',
  'insert',
  'insertEncoded',
  'command',
  'queryBinary',
  'queryBinaryView',
  'queryBinaryFile',
]);

/**
 * The real store, with every statement (query, insert, command, binary query) counted — also through the
 * views `with()` returns — and handed to `onStatement` as it is sent. Nothing is faked: each call goes to the
 * wrapped store unchanged.
 */
export function countingStore(
  store: Store,
  onStatement?: (entry: StatementLog['entries'][number]) => void,
): { store: Store; log: StatementLog } {
  const log: StatementLog = {
    entries: [],
    reset() {
      log.entries.length = 0;
    },
  };
  const wrap = (target: Store): Store =>
    new Proxy(target, {
      get(t, prop, receiver) {
        const value: unknown = Reflect.get(t, prop, receiver);
        if (prop === 'with' && typeof value === 'function') {
          return (defaults: Parameters<Store['with']>[0]) => wrap(t.with(defaults));
        }
        if (typeof prop === 'string' && COUNTED.has(prop) && typeof value === 'function') {
          return (...args: unknown[]) => {
            const insert = prop === 'insert' || prop === 'insertEncoded';
            const opts = (insert ? args[2] : args[1]) as { label?: string } | undefined;
            const entry = {
              kind: insert ? `insert ${String(args[0])}` : prop,
              label: opts?.label ?? '',
              sql: insert || typeof args[0] !== 'string' ? '' : args[0],
            };
            log.entries.push(entry);
            onStatement?.(entry);
            return (value as (...a: unknown[]) => unknown).apply(t, args);
          };
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value;
      },
    });
  return { store: wrap(store), log };
}
