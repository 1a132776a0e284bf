/**
 * OpenAPI plumbing shared by the route groups: the app type, the validation hook that turns a failed zod check
 * into `400 {"error":{"code","message","field"}}`, the schemas several routes reuse, and the generator of the
 * OpenAPI 3.1 document. Each route declares its request schemas once with `createRoute`; the same schemas
 * validate requests and produce the document served at `GET /openapi.json`.
 */
import { OpenAPIHono, z, type Hook, type OpenAPIHonoOptions } from '@hono/zod-openapi';
import type { BlankEnv, BlankSchema } from 'hono/types';
import type { ZodError } from 'zod';
import { ErrorCodes } from '../common/errors.js';
import { ApiError } from './errors.js';

/** The API app: a hono app whose `openapi()` routes validate with, and are documented by, their zod schemas. */
export type ApiApp = OpenAPIHono<BlankEnv, BlankSchema, '/'>;

/** Where a failed value came from (`json` is the request body). */
type Target = Parameters<Hook<unknown, BlankEnv, string, unknown>>[0]['target'];

/**
 * The 400 error for a failed zod check, naming the first bad field by its dotted path (`limit`, `labels.3.row`;
 * an unknown key by its own path; `body` for the root of a body).
 */
export function validationError(error: ZodError, target: Target): ApiError {
  const issue = error.issues[0];
  let field = issue?.path.map(String).join('.') ?? '';
  let message = issue?.message ?? 'invalid';
  if (issue?.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    field = field ? `${field}.${key}` : key;
    message = 'unknown field';
  }
  const name = field === '' ? (target === 'json' ? 'body' : target) : field;
  return new ApiError(400, ErrorCodes.badRequest, `${name}: ${message}`, { field: name });
}

/** The `defaultHook` of the API app: every request validation failure becomes a thrown {@link validationError}. */
export const validationHook: NonNullable<OpenAPIHonoOptions<BlankEnv>['defaultHook']> = (result) => {
  if (!result.success) throw validationError(result.error, result.target);
};

/** A new, empty API app with {@link validationHook}. */
export function createOpenApiApp(): ApiApp {
  return new OpenAPIHono<BlankEnv, BlankSchema, '/'>({ defaultHook: validationHook });
}

/** `{"error":{"code","message","field"?}}`, the body of every error answer. */
export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'bad_request' }),
      message: z.string().openapi({ example: 'limit: Too big: expected number to be <=10000' }),
      field: z
        .string()
        .optional()
        .openapi({ description: 'The offending input, when there is one.', example: 'limit' }),
    }),
  })
  .openapi('Error');

const errorContent = { 'application/json': { schema: errorSchema } };

/** An error response entry for a route's `responses`. */
export function errorResponse(description: string): { description: string; content: typeof errorContent } {
  return { description, content: errorContent };
}

/** Errors every `/api/v1/` route can answer. */
export const protectedErrors = {
  400: errorResponse('Invalid parameter or body; the message and `field` name the input.'),
  401: errorResponse('Missing or wrong bearer token (only when a token is configured).'),
  500: errorResponse('Server-side failure; details are logged, not returned.'),
  503: errorResponse('Store unavailable.'),
};

/** Errors of every `/api/v1/models/{name}/…` route. */
export const modelErrors = { ...protectedErrors, 404: errorResponse('Unknown model (no stored requests or rows).') };

/** A JSON success response entry. */
export function jsonResponse<S extends z.ZodType>(
  schema: S,
  description = 'OK',
): {
  description: string;
  content: { 'application/json': { schema: S } };
} {
  return { description, content: { 'application/json': { schema } } };
}

/** `{name}` of the model routes. */
export const modelNameParams = z.object({
  name: z
    .string()
    .min(1)
    .openapi({ param: { name: 'name', in: 'path' }, description: 'Model name.', example: 'iris' }),
});

/** An optional time query parameter (checked by the window resolver, which names it on error). */
export function timeParam(description: string): z.ZodOptional<z.ZodString> {
  return z
    .string()
    .optional()
    .openapi({ description: `${description} ISO-8601 or epoch milliseconds.`, example: '2025-01-01T00:00:00Z' });
}

/** `from` / `to` of a window; at most `api.maxWindowMs` wide. */
export const windowQueryShape = {
  from: timeParam('Window start (inclusive). Default: `to` − 1 h.'),
  to: timeParam('Window end (exclusive). Default: now.'),
};

/** `{from, to}` of an answer's window. */
export const windowSchema = z
  .object({ from: z.string().openapi({ format: 'date-time' }), to: z.string().openapi({ format: 'date-time' }) })
  .openapi('Window');

/** Title, version and description of the document. */
const documentConfig = {
  openapi: '3.1.0',
  info: {
    title: 'modelwatch API',
    version: '0.1.0',
    description:
      'Monitoring for served ML models. Bodies are JSON; errors are `{"error":{"code","message"}}`. ' +
      'Times are ISO-8601 or epoch milliseconds on input and ISO-8601 on output.',
  },
} as const;

const documents = new WeakMap<ApiApp, object>();

/**
 * The OpenAPI 3.1 document of every route registered on `app` (built once per app, after the routes are
 * mounted: call it from a handler, not while mounting).
 */
export function openApiDocument(app: ApiApp): object {
  let doc = documents.get(app);
  if (doc === undefined) {
    app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer' });
    doc = app.getOpenAPI31Document(documentConfig);
    documents.set(app, doc);
  }
  return doc;
}

/** Security requirement of the `/api/v1/` routes. */
export const bearerSecurity = [{ bearer: [] }];
