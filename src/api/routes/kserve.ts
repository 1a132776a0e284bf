import { createRoute, z } from '@hono/zod-openapi';
import type { RuntimeContext } from '../../runtime/context.js';
import { kserveRoutes } from '../../ingest/index.js';
import { errorResponse, jsonResponse, type ApiApp } from '../openapi.js';

const header = (description: string, required = false): z.ZodType =>
  (required ? z.string() : z.string().optional()).openapi({ description });

/**
 * `POST /ingest/kserve` as documented. The receiver validates the event itself (it is a plain hono app with its
 * own pairing state and limits), so this declaration only describes it; the parity test checks both agree on
 * the path.
 */
export const kserveRoute = createRoute({
  method: 'post',
  path: '/ingest/kserve',
  summary: 'Receive a KServe InferenceLogger CloudEvent (HTTP binary mode)',
  description:
    'Request and response events of one call share `ce-id` and are paired, then stored like a sidecar capture. ' +
    'The body is the raw V2 request or response body; its content type is kept as sent.',
  operationId: 'kserveEvent',
  request: {
    headers: z.object({
      'ce-type': z
        .enum(['org.kubeflow.serving.inference.request', 'org.kubeflow.serving.inference.response'])
        .openapi({ description: 'Request or response event.' }),
      'ce-id': header('Id shared by the request and response events of one call.', true),
      'ce-specversion': z.literal('1.0').optional().openapi({ description: 'CloudEvents version.' }),
      'ce-time': header('RFC 3339 time of the event (default: arrival).'),
      'ce-inferenceservicename': header('InferenceService name; becomes the model name.'),
      'ce-namespace': header('Kubernetes namespace.'),
      'ce-component': header('predictor, transformer or explainer.'),
      'ce-endpoint': header('Endpoint (canary/default).'),
      'ce-metadata': header('JSON object of allow-listed request headers (`map[string][]string`).'),
    }),
    body: { required: true, content: { '*/*': { schema: z.string().openapi({ format: 'binary' }) } } },
  },
  responses: {
    202: jsonResponse(z.object({ accepted: z.literal(true), id: z.string() }), 'Accepted'),
    400: errorResponse('Missing or invalid CloudEvents attribute; the message names it.'),
    413: errorResponse('Event body too large.'),
    415: errorResponse('Structured-mode CloudEvent (send binary mode).'),
  },
});

/** Mounts the KServe receiver and documents its route. */
export function kserveIntakeRoutes(app: ApiApp, ctx: RuntimeContext): void {
  app.openAPIRegistry.registerPath(kserveRoute);
  kserveRoutes(app, ctx);
}
