import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import { ErrorCodes, ModelwatchError, isModelwatchError, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

/** JSON body of every API error (DESIGN §2). `field` names the offending input when there is one. */
export interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
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
  [ErrorCodes.payloadTooLarge]: 413,
  [ErrorCodes.storeUnavailable]: 503,
  [ErrorCodes.busUnavailable]: 503,
  [ErrorCodes.busFull]: 503,
  [ErrorCodes.timeout]: 504,
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

/**
 * Turns any thrown value into the JSON error response. Known errors keep their message (they never
 * carry secrets); anything unexpected is logged and answered with a generic 500.
 */
export function toErrorResponse(err: unknown, c: Context, logger: Logger): Response {
  if (err instanceof ApiError) return c.json(errorBody(err.code, err.message, err.field), err.status);
  if (isModelwatchError(err)) {
    const status = statusForCode(err.code);
    if (status >= 500) logger.warn('api request failed', { path: c.req.path, code: err.code, error: err.message });
    return c.json(errorBody(err.code, err.message, err.field), status);
  }
  if (err instanceof HTTPException) {
    const status = err.status;
    const code =
      status === 401 ? ErrorCodes.unauthorized
      : status === 404 ? ErrorCodes.notFound
      : status === 413 ? ErrorCodes.payloadTooLarge
      : status < 500 ? ErrorCodes.badRequest
      : ErrorCodes.internal;
    return c.json(errorBody(code, err.message || 'request failed'), status);
  }
  logger.error('api internal error', { path: c.req.path, error: err instanceof Error ? err.message : String(err) });
  return c.json(errorBody(ErrorCodes.internal, 'internal error'), 500);
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
