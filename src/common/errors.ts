/**
 * The one error type of modelwatch. Callers decide retry, dead-letter (quarantine) or HTTP status from
 * `code` and `retryable`, never from message text.
 */
export const ErrorCodes = {
  /** Configuration file or environment variable is invalid. */
  configInvalid: 'config_invalid',
  /** A request or record body could not be decoded (V2 JSON, binary extension, protobuf, bus envelope). */
  decodeInvalid: 'decode_invalid',
  /** An API request failed validation. */
  badRequest: 'bad_request',
  /** Authentication missing or wrong. */
  unauthorized: 'unauthorized',
  /** The named resource does not exist. */
  notFound: 'not_found',
  /** Drift has nothing to compare with yet: no pinned reference and the default one is not complete. */
  noReference: 'no_reference',
  /** The request body is larger than allowed. */
  payloadTooLarge: 'payload_too_large',
  /** ClickHouse could not be reached or rejected a statement. */
  storeUnavailable: 'store_unavailable',
  /** A store query failed for a non-transient reason (bad SQL, bad data). */
  storeError: 'store_error',
  /** The bus could not accept or deliver. */
  busUnavailable: 'bus_unavailable',
  /** The in-process bus or tee buffer is full (bounded in bytes). */
  busFull: 'bus_full',
  /**
   * The bus refused the records outright (too large, invalid topic, not authorized): publishing them
   * again will not help. Never retryable.
   */
  busRejected: 'bus_rejected',
  /** The inference upstream could not be reached. */
  upstreamUnavailable: 'upstream_unavailable',
  /** The inference upstream did not answer in time. */
  upstreamTimeout: 'upstream_timeout',
  /** An input file for `modelwatch report` is missing, empty or unreadable. */
  inputInvalid: 'input_invalid',
  /** An outbound notification target was refused (private address, redirect, bad scheme). */
  outboundRefused: 'outbound_refused',
  /** A notification receiver did not acknowledge. */
  notifyFailed: 'notify_failed',
  /** An operation exceeded its deadline. */
  timeout: 'timeout',
  /** An operation was cancelled by its caller (abort signal, shutdown) or killed on the server. */
  cancelled: 'cancelled',
  /** A programming error or an unexpected state. */
  internal: 'internal',
} as const;

/** Union of all error codes. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Options of {@link ModelwatchError}. */
export interface ModelwatchErrorOptions {
  /** Whether trying the same operation again may succeed. @default false */
  retryable?: boolean;
  /** The input field (dotted path) that is wrong, when there is one. */
  field?: string;
  /** The underlying error. */
  cause?: unknown;
}

/** Base class of every error modelwatch raises on purpose. */
export class ModelwatchError extends Error {
  /** Machine-readable reason. */
  readonly code: ErrorCode;
  /** Whether trying again may succeed. */
  readonly retryable: boolean;
  /** The offending input field, when known. */
  readonly field: string | undefined;

  constructor(code: ErrorCode, message: string, options: ModelwatchErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ModelwatchError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.field = options.field;
  }
}

/** True when `err` is a {@link ModelwatchError}, optionally with the given code. */
export function isModelwatchError(err: unknown, code?: ErrorCode): err is ModelwatchError {
  return err instanceof ModelwatchError && (code === undefined || err.code === code);
}

/** The message of any thrown value, without assuming it is an Error. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
