import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import { ErrorCodes, ModelwatchError, errorMessage, isModelwatchError, type ErrorCode } from '../common/errors.js';
import { newId } from '../common/ids.js';
import type { Logger } from '../common/logger.js';

/**
 * JSON body of every API error. `field` names the offending input when there is one; `correlation_id`
 * (5xx only) names the server log entry that holds the full error.
 */
export interface ApiErrorBody {
  error: { code: string; message: string; field?: string; correlation_id?: string };
}

/** Options of {@link ApiError}. */
export interface ApiErrorOptions {
  /** The offending input field (dotted path). */
  field?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * The one HTTP error of the API (hono `HTTPException` style): a {@link ModelwatchError} with an HTTP status.
 * Thrown anywhere in a handler; `app.onError` turns it into `{"error":{"code","message"}}`.
 */
export class ApiError extends ModelwatchError {
  /** HTTP status sent to the client. */
  readonly status: ContentfulStatusCode;

  constructor(status: ContentfulStatusCode, code: ErrorCode, message: string, options: ApiErrorOptions = {}) {
    super(code, message, options);
    this.name = 'ApiError';
    this.status = status;
  }
}

const statusByCode: Partial<Record<ErrorCode, ContentfulStatusCode>> = {
  [ErrorCodes.badRequest]: 400,
  [ErrorCodes.decodeInvalid]: 400,
  [ErrorCodes.inputInvalid]: 400,
  [ErrorCodes.unauthorized]: 401,
  [ErrorCodes.notFound]: 404,
  [ErrorCodes.noReference]: 409,
  [ErrorCodes.payloadTooLarge]: 413,
  [ErrorCodes.storeUnavailable]: 503,
  [ErrorCodes.busUnavailable]: 503,
  [ErrorCodes.busFull]: 503,
  [ErrorCodes.timeout]: 504,
  [ErrorCodes.cancelled]: 503,
};

/** What a client is told for a server-side failure; the details stay in the log. */
const publicMessageByCode: Partial<Record<ErrorCode, string>> = {
  [ErrorCodes.storeUnavailable]: 'store unavailable',
  [ErrorCodes.storeError]: 'store query failed',
  [ErrorCodes.timeout]: 'request timed out',
  [ErrorCodes.cancelled]: 'request cancelled',
  [ErrorCodes.busUnavailable]: 'bus unavailable',
  [ErrorCodes.busFull]: 'bus full',
};

/** The HTTP status for an error code (500 for codes that are the server's fault). */
export function statusForCode(code: ErrorCode): ContentfulStatusCode {
  return statusByCode[code] ?? 500;
}

/** Builds the JSON error body. */
export function errorBody(code: string, message: string, field?: string): ApiErrorBody {
  return { error: field === undefined ? { code, message } : { code, message, field } };
}

/** Sends an error response (used by middleware that answers without throwing). */
export function errorResponse(c: Context, status: ContentfulStatusCode, code: ErrorCode, message: string): Response {
  return c.json(errorBody(code, message), status);
}

/** The messages of an error and its causes, for the log. */
function causeChain(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 5 && e !== undefined && e !== null; i++) {
    parts.push(errorMessage(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(' <- ');
}

/** Logs a server-side failure under a fresh correlation id and answers with that id and a generic message. */
function serverError(
  c: Context,
  logger: Logger,
  status: ContentfulStatusCode,
  code: ErrorCode,
  message: string,
  err: unknown,
): Response {
  const correlationId = newId();
  logger.error('api request failed', {
    correlation_id: correlationId,
    path: c.req.path,
    status,
    code,
    error: causeChain(err),
  });
  c.header('x-correlation-id', correlationId);
  return c.json({ error: { code, message, correlation_id: correlationId } } satisfies ApiErrorBody, status);
}

/**
 * Turns any thrown value into the JSON error response. Client errors (4xx) keep their message (they never
 * carry secrets). Server errors (5xx) never carry ClickHouse or other internal text: the body holds a
 * generic message and a correlation id, and the full error is logged under that id.
 */
export function toErrorResponse(err: unknown, c: Context, logger: Logger): Response {
  if (err instanceof ApiError) {
    // ApiError messages are written by the API itself; a 5xx one is still logged with its cause.
    if (err.status >= 500) return serverError(c, logger, err.status, err.code, err.message, err);
    return c.json(errorBody(err.code, err.message, err.field), err.status);
  }
  if (isModelwatchError(err)) {
    const status = statusForCode(err.code);
    if (status >= 500)
      return serverError(c, logger, status, err.code, publicMessageByCode[err.code] ?? 'internal error', err);
    return c.json(errorBody(err.code, err.message, err.field), status);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code =
      status === 401
        ? ErrorCodes.unauthorized
        : status === 404
          ? ErrorCodes.notFound
          : status === 413
            ? ErrorCodes.payloadTooLarge
            : status < 500
              ? ErrorCodes.badRequest
              : ErrorCodes.internal;
    if (status >= 500) return serverError(c, logger, status, code, 'internal error', err);
    return c.json(errorBody(code, err.message || 'request failed'), status);
  }
  return serverError(c, logger, 500, ErrorCodes.internal, 'internal error', err);
}

/**
 * Validates `value` with a zod schema; on failure throws a 400 {@link ApiError} naming the first bad field
 * by its dotted path (`limit`, `labels.3.row`; an unknown key by its own path; `body` for the root).
 */
export function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  let field = issue?.path.map(String).join('.') ?? '';
  let message = issue?.message ?? 'invalid';
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    field = field ? `${field}.${key}` : key;
    message = 'unknown field';
  }
  const name = field === '' ? 'body' : field;
  throw new ApiError(400, ErrorCodes.badRequest, `${name}: ${message}`, { field: name });
}
