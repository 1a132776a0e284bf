import { ErrorCodes, ModelwatchError, errorMessage, type ErrorCode } from '../common/errors.js';

/** How one kind of failure is reported: the modelwatch error code and whether trying again may succeed. */
export interface StoreFailureClass {
  code: ErrorCode;
  retryable: boolean;
}

const unavailable: StoreFailureClass = { code: ErrorCodes.storeUnavailable, retryable: true };
const timedOut: StoreFailureClass = { code: ErrorCodes.timeout, retryable: true };
const cancelled: StoreFailureClass = { code: ErrorCodes.cancelled, retryable: true };
const failed: StoreFailureClass = { code: ErrorCodes.storeError, retryable: false };

/**
 * ClickHouse exception codes (`src/Common/ErrorCodes.cpp`) with a meaning of their own. Any other code is a
 * statement or data error: `store_error`, not retryable.
 */
export const ClickHouseCodes: Readonly<Record<number, { name: string } & StoreFailureClass>> = {
  32: { name: 'ATTEMPT_TO_READ_AFTER_EOF', ...unavailable },
  46: { name: 'UNKNOWN_FUNCTION', ...failed },
  159: { name: 'TIMEOUT_EXCEEDED', ...timedOut },
  160: { name: 'TOO_SLOW', ...timedOut },
  164: { name: 'READONLY', ...failed },
  202: { name: 'TOO_MANY_SIMULTANEOUS_QUERIES', ...unavailable },
  203: { name: 'NO_FREE_CONNECTION', ...unavailable },
  209: { name: 'SOCKET_TIMEOUT', ...unavailable },
  210: { name: 'NETWORK_ERROR', ...unavailable },
  236: { name: 'ABORTED', ...unavailable },
  241: { name: 'MEMORY_LIMIT_EXCEEDED', ...unavailable },
  242: { name: 'TABLE_IS_READ_ONLY', ...unavailable },
  252: { name: 'TOO_MANY_PARTS', ...unavailable },
  279: { name: 'ALL_CONNECTION_TRIES_FAILED', ...unavailable },
  285: { name: 'TOO_FEW_LIVE_REPLICAS', ...unavailable },
  319: { name: 'UNKNOWN_STATUS_OF_INSERT', ...unavailable },
  394: { name: 'QUERY_WAS_CANCELLED', ...cancelled },
  425: { name: 'SYSTEM_ERROR', ...unavailable },
  497: { name: 'ACCESS_DENIED', ...failed },
  516: { name: 'AUTHENTICATION_FAILED', code: ErrorCodes.storeUnavailable, retryable: false },
  999: { name: 'KEEPER_EXCEPTION', ...unavailable },
};

/** Node.js socket error codes that mean the store could not be reached (all retryable). */
export const NetworkErrorCodes: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * chdb's own error codes (`chdb/dist/errors`), for failures that carry no ClickHouse code: the embedded
 * engine's connection, its client-side deadline and its abort.
 */
export const ChdbErrorCodes: Readonly<Record<string, StoreFailureClass>> = {
  CHDB_CONNECTION: unavailable,
  CHDB_CLOSED: { code: ErrorCodes.storeUnavailable, retryable: false },
  CHDB_INTERNAL: unavailable,
  CHDB_TIMEOUT: timedOut,
  CHDB_ABORT: cancelled,
  CHDB_BIND: failed,
};

/** What the store knew about a failed statement when it failed. */
export interface StoreFailureContext {
  /** What was being done, e.g. `insert into mw_requests` (first part of the message). */
  op: string;
  /** The statement's query id. */
  queryId?: string | undefined;
  /** Why the store aborted the statement itself, when it did: its deadline passed, or the caller's signal fired. */
  aborted?: 'deadline' | 'signal' | undefined;
}

/** A failed store statement, classified. The message carries ClickHouse's text: log it, never send it to a client. */
export class StoreError extends ModelwatchError {
  /** The ClickHouse exception code, when the engine raised one. */
  readonly clickhouseCode: number | undefined;
  /** The Node.js or chdb error code, when the failure was below ClickHouse. */
  readonly systemCode: string | undefined;
  /** The statement's query id. */
  readonly queryId: string | undefined;

  constructor(
    cls: StoreFailureClass,
    message: string,
    details: {
      cause: unknown;
      clickhouseCode?: number | undefined;
      systemCode?: string | undefined;
      queryId?: string | undefined;
    },
  ) {
    super(cls.code, message, { retryable: cls.retryable, cause: details.cause });
    this.name = 'StoreError';
    this.clickhouseCode = details.clickhouseCode;
    this.systemCode = details.systemCode;
    this.queryId = details.queryId;
  }
}

/** Codes found on an error and its `cause` chain by {@link storeErrorCodes}. */
export interface StoreErrorCodes {
  /** The first ClickHouse exception code. */
  clickhouseCode?: number;
  /** The first ClickHouse exception type name the client parsed (e.g. `EMPTY_DATA_PASSED`). */
  clickhouseType?: string;
  /** The first Node.js or chdb error code. */
  systemCode?: string;
  /** An `AbortError` was on the chain. */
  abort?: boolean;
}

/** The codes found on an error and its `cause` chain (a {@link StoreError}'s own fields included). */
export function storeErrorCodes(err: unknown): StoreErrorCodes {
  const out: StoreErrorCodes = {};
  let e: unknown = err;
  for (let depth = 0; depth < 8 && typeof e === 'object' && e !== null; depth++) {
    if (e instanceof ModelwatchError) {
      // Our own `code` is a modelwatch code, not the engine's; a StoreError carries the engine's separately.
      if (e instanceof StoreError && out.clickhouseCode === undefined && e.clickhouseCode !== undefined)
        out.clickhouseCode = e.clickhouseCode;
      e = e.cause;
      continue;
    }
    const o = e as { code?: unknown; clickhouseCode?: unknown; name?: unknown; cause?: unknown; type?: unknown };
    if (out.clickhouseType === undefined && typeof o.type === 'string' && /^[A-Z_]+$/.test(o.type))
      out.clickhouseType = o.type;
    // chdb errors: `clickhouseCode` (number) beside their own `code` ('CHDB_QUERY', ...).
    if (out.clickhouseCode === undefined && typeof o.clickhouseCode === 'number') out.clickhouseCode = o.clickhouseCode;
    // @clickhouse/client's ClickHouseError: `code` is the exception number as text ('159').
    if (typeof o.code === 'string') {
      if (/^\d+$/.test(o.code)) out.clickhouseCode ??= Number(o.code);
      else out.systemCode ??= o.code;
    }
    if (o.name === 'AbortError') out.abort = true;
    e = o.cause;
  }
  return out;
}

/**
 * Classifies any failure of a store statement, in one place: by ClickHouse exception code (table
 * {@link ClickHouseCodes}), then by network error code ({@link NetworkErrorCodes}, `UND_ERR_*`) or chdb code
 * ({@link ChdbErrorCodes}); never by message text. A failure after the store aborted the statement itself
 * is `timeout` (deadline) or `cancelled` (caller's signal) whatever the client reported.
 */
export function classifyStoreError(err: unknown, context: StoreFailureContext): ModelwatchError {
  if (err instanceof ModelwatchError) return err;
  const { clickhouseCode, systemCode, abort } = storeErrorCodes(err);
  let cls: StoreFailureClass;
  if (context.aborted === 'deadline') cls = timedOut;
  else if (context.aborted === 'signal') cls = cancelled;
  else if (clickhouseCode !== undefined) cls = ClickHouseCodes[clickhouseCode] ?? failed;
  else if (systemCode !== undefined && (NetworkErrorCodes.has(systemCode) || systemCode.startsWith('UND_ERR_')))
    cls = unavailable;
  else if (systemCode !== undefined && ChdbErrorCodes[systemCode] !== undefined) cls = ChdbErrorCodes[systemCode];
  else if (abort === true) cls = cancelled;
  else cls = failed;
  const name = clickhouseCode !== undefined ? ClickHouseCodes[clickhouseCode]?.name : undefined;
  const tag =
    clickhouseCode !== undefined
      ? ` [ClickHouse ${clickhouseCode}${name ? ` ${name}` : ''}]`
      : systemCode
        ? ` [${systemCode}]`
        : '';
  const why = context.aborted === 'deadline' ? 'deadline passed; ' : context.aborted === 'signal' ? 'cancelled; ' : '';
  return new StoreError(cls, `${context.op}: ${why}${errorMessage(err)}${tag}`, {
    cause: err,
    clickhouseCode,
    systemCode,
    queryId: context.queryId,
  });
}
