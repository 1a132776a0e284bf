import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRoute, z } from '@hono/zod-openapi';
import { ErrorCodes } from '../../common/errors.js';
import { DriftMethods } from '../../config/schema.js';
import {
  activateReference,
  activeReferenceId,
  applyConfiguredReference,
  createReference,
  defaultReferenceState,
  listReferences,
  type ListedReference,
  type ReferenceInfo,
} from '../../drift/reference.js';
import type { FileFormat } from '../../drift/files.js';
import type { RuntimeContext } from '../../runtime/context.js';
import { ApiError } from '../errors.js';
import { bearerSecurity, errorResponse, jsonResponse, modelErrors, modelNameParams, type ApiApp } from '../openapi.js';
import { modelExists, requireModel } from '../query.js';
import { cappedWindow } from '../window.js';

/** Upload formats of `POST …/references` and the ClickHouse input format each is read as. */
export const UploadFormats = {
  csv: 'CSVWithNames',
  tsv: 'TSVWithNames',
  parquet: 'Parquet',
  jsonl: 'JSONEachRow',
} as const satisfies Record<string, FileFormat>;

const uploadSchema = z
  .strictObject({
    format: z
      .enum(['csv', 'tsv', 'parquet', 'jsonl'])
      .openapi({ description: 'File format (CSV and TSV with a header row).' }),
    data: z
      .string()
      .min(1)
      .openapi({ description: 'The file content: text, or base64 with `encoding: base64` (Parquet).' }),
    encoding: z.enum(['utf8', 'base64']).default('utf8'),
    name: z
      .string()
      .max(200)
      .optional()
      .openapi({ description: 'File name recorded with the reference (`upload:<name>`).' }),
    columns: z.array(z.string()).optional().openapi({ description: 'Columns to keep (all when omitted).' }),
    categorical: z.array(z.string()).optional().openapi({ description: 'Numeric columns to treat as categorical.' }),
  })
  .openapi('ReferenceUpload');

const createBodySchema = z
  .union([
    z.strictObject({
      from: z
        .union([z.string(), z.number()])
        .openapi({ description: 'Window start (inclusive): ISO-8601 or epoch ms.' }),
      to: z
        .union([z.string(), z.number()])
        .openapi({ description: 'Window end (exclusive); must not be in the future.' }),
      activate: z.boolean().default(true),
    }),
    z.strictObject({ upload: uploadSchema, activate: z.boolean().default(true) }),
  ])
  .openapi('ReferenceCreate', {
    description:
      "A window of the model's stored successful traffic (`from`, `to`), or a file (`upload`), within `api.maxBodyBytes`. `activate` (default true) makes it the reference detection uses.",
    example: { from: '2026-01-01T00:00:00Z', to: '2026-01-01T06:00:00Z' },
  });

const methodSchema = z.object({
  name: z.string(),
  kind: z.enum(['numeric', 'categorical']),
  output: z.boolean().optional(),
  method: z.enum(DriftMethods),
  threshold: z.number(),
});

const referenceSchema = z
  .object({
    id: z.string(),
    model: z.string(),
    source: z.enum(['traffic', 'file']),
    kind: z.enum(['default', 'pinned', 'legacy']).openapi({
      description:
        '`default`: frozen from the first successful traffic; `pinned`: chosen through the API, CLI or config.',
    }),
    from: z.string().nullable(),
    to: z.string().nullable(),
    first_row_at: z.string().nullable(),
    last_row_at: z.string().nullable(),
    file: z.string().nullable(),
    created_at: z.string(),
    rows: z.number().int(),
    features: z.array(
      z.object({ name: z.string(), kind: z.enum(['numeric', 'categorical']), output: z.boolean().optional() }),
    ),
    methods: z.array(methodSchema).openapi({
      description:
        'Per feature, the method and threshold fixed at creation; detection keeps them (config overrides win).',
    }),
    active: z.boolean(),
  })
  .openapi('Reference');

const listSchema = z
  .object({
    model: z.string(),
    active: z
      .string()
      .nullable()
      .openapi({ description: 'Id of the reference detection uses now; null before there is one.' }),
    default_reference: z
      .object({
        status: z.enum(['complete', 'pending']),
        rows: z.number().int(),
        rows_needed: z.number().int().optional(),
        completes_by: z.string().nullable().optional(),
      })
      .nullable()
      .openapi({ description: 'Progress of the default reference while no reference is active; null otherwise.' }),
    references: z.array(referenceSchema),
  })
  .openapi('ReferenceList');

const createRouteDef = createRoute({
  method: 'post',
  path: '/api/v1/models/{name}/references',
  summary: 'Pin a reference: a window of stored traffic or an uploaded file',
  operationId: 'createReference',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    body: { required: true, content: { 'application/json': { schema: createBodySchema } } },
  },
  responses: {
    201: jsonResponse(referenceSchema, 'Created'),
    ...modelErrors,
    413: errorResponse('Body larger than api.maxBodyBytes.'),
  },
});

const listRouteDef = createRoute({
  method: 'get',
  path: '/api/v1/models/{name}/references',
  summary: "A model's references, newest first, and which one is active",
  operationId: 'listReferences',
  security: bearerSecurity,
  request: { params: modelNameParams },
  responses: { 200: jsonResponse(listSchema), ...modelErrors },
});

const activateRouteDef = createRoute({
  method: 'put',
  path: '/api/v1/models/{name}/references/active',
  summary: 'Make a stored reference the one detection uses',
  operationId: 'activateReference',
  security: bearerSecurity,
  request: {
    params: modelNameParams,
    body: {
      required: true,
      content: {
        'application/json': { schema: z.strictObject({ id: z.string().min(1) }).openapi('ReferenceActivate') },
      },
    },
  },
  responses: { 200: jsonResponse(referenceSchema), ...modelErrors },
});

function listed(ref: ReferenceInfo, active: boolean): ListedReference {
  const { profile: _profile, ...rest } = ref;
  return { ...rest, active };
}

/** Grace for a window end slightly after the server's clock (client clock skew). */
const FUTURE_GRACE_MS = 5_000;

/**
 * `POST /api/v1/models/{name}/references` (a traffic window or a file upload, JSON), `GET …/references` and
 * `PUT …/references/active` `{"id"}`. Uploads are written to a private temporary file, read by ClickHouse
 * `file()` (so with a ClickHouse server they need the embedded store's file access; use `--file` on the
 * server host otherwise) and removed.
 */
export function referenceRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openapi(createRouteDef, async (c) => {
    const { name } = c.req.valid('param');
    const body = c.req.valid('json');
    let ref: ReferenceInfo;
    if ('upload' in body) {
      const u = body.upload;
      const dir = await mkdtemp(join(tmpdir(), 'mw-ref-upload-'));
      try {
        const path = join(dir, `reference.${u.format}`);
        await writeFile(path, Buffer.from(u.data, u.encoding === 'base64' ? 'base64' : 'utf8'), { mode: 0o600 });
        ref = await createReference(
          ctx.store,
          {
            model: name,
            file: path,
            format: UploadFormats[u.format],
            columns: u.columns,
            categorical: u.categorical,
            label: `upload:${u.name ?? `reference.${u.format}`}`,
          },
          { activate: body.activate },
        );
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } else {
      const now = Date.now();
      const { fromMs, toMs } = cappedWindow(
        String(body.from),
        String(body.to),
        ctx.config.api.maxWindowMs,
        { from: 'from', to: 'to' },
        now,
      );
      if (fromMs >= toMs) throw new ApiError(400, ErrorCodes.badRequest, 'from: must be before to', { field: 'from' });
      if (toMs > now + FUTURE_GRACE_MS) {
        throw new ApiError(400, ErrorCodes.badRequest, 'to: the window must have ended (to is in the future)', {
          field: 'to',
        });
      }
      await requireModel(ctx.store, name);
      ref = await createReference(ctx.store, { model: name, from: fromMs, to: toMs }, { activate: body.activate, now });
    }
    const active = await activeReferenceId(ctx.store, name);
    return c.json(listed(ref, active === ref.id), 201);
  });

  app.openapi(listRouteDef, async (c) => {
    const { name } = c.req.valid('param');
    const configured = ctx.config.models[name]?.reference;
    if (configured !== undefined) await applyConfiguredReference(ctx.store, name, configured);
    const references = await listReferences(ctx.store, name);
    if (references.length === 0 && !(await modelExists(ctx.store, name))) {
      throw new ApiError(404, ErrorCodes.notFound, `model not found: ${name}`, { field: 'name' });
    }
    const active = references.find((r) => r.active)?.id ?? null;
    let progress: z.infer<typeof listSchema>['default_reference'] = null;
    if (active === null) {
      const s = await defaultReferenceState(ctx.store, name, ctx.config.detect.reference, Date.now());
      progress =
        s.status === 'complete'
          ? { status: 'complete', rows: s.rows }
          : {
              status: 'pending',
              rows: s.rows,
              rows_needed: s.rowsNeeded,
              completes_by: s.completesBy === null ? null : new Date(s.completesBy).toISOString(),
            };
    }
    return c.json({ model: name, active, default_reference: progress, references }, 200);
  });

  app.openapi(activateRouteDef, async (c) => {
    const { name } = c.req.valid('param');
    const { id } = c.req.valid('json');
    const ref = await activateReference(ctx.store, name, id);
    return c.json(listed(ref, true), 200);
  });
}
