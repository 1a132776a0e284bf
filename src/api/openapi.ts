/**
 * The OpenAPI 3.1 document of every route the API serves (DESIGN §2). One object, kept next to the
 * routes; `test/api-*.test.ts` checks that every route mounted on the app is listed here, so a route
 * added to `routes/index.ts` must be documented in the same change.
 */

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

const json = (ref: string, description = 'OK') => ({
  description,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } },
});

const timeParam = (name: string, description: string) => ({
  name,
  in: 'query',
  required: false,
  description: `${description} ISO-8601 or epoch milliseconds.`,
  schema: { oneOf: [{ type: 'string', format: 'date-time' }, { type: 'integer', minimum: 0 }] },
});

const modelName = { name: 'name', in: 'path', required: true, description: 'Model name.', schema: { type: 'string' } };
const from = timeParam('from', 'Window start (inclusive). Default: `to` − 1 h.');
const to = timeParam('to', 'Window end (exclusive). Default: now.');

const protectedErrors = {
  '400': errorResponse('Invalid parameter; the message names the field.'),
  '401': errorResponse('Missing or wrong bearer token (only when a token is configured).'),
  '503': errorResponse('Store unavailable.'),
};

const modelErrors = { ...protectedErrors, '404': errorResponse('Unknown model.') };

const numberMap = { type: 'object', additionalProperties: { type: ['number', 'string', 'null'] } };

/** The OpenAPI 3.1 document served at `GET /openapi.json`. */
export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'modelwatch API',
    version: '0.1.0',
    description:
      'Monitoring for served ML models. All bodies are JSON; errors are `{"error":{"code","message"}}`. ' +
      'Times are ISO-8601 or epoch milliseconds on input and ISO-8601 on output.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message'],
            properties: {
              code: { type: 'string' },
              message: { type: 'string' },
              field: { type: 'string', description: 'The offending input field, when there is one.' },
            },
          },
        },
      },
      Model: {
        type: 'object',
        required: ['name', 'versions', 'first_seen', 'last_seen', 'requests', 'rows'],
        properties: {
          name: { type: 'string' },
          versions: { type: 'array', items: { type: 'string' } },
          first_seen: { type: 'string', format: 'date-time' },
          last_seen: { type: 'string', format: 'date-time' },
          requests: { type: 'integer', minimum: 0 },
          rows: { type: 'integer', minimum: 0 },
        },
      },
      ModelList: {
        type: 'object',
        required: ['models'],
        properties: { models: { type: 'array', items: { $ref: '#/components/schemas/Model' } } },
      },
      Prediction: {
        type: 'object',
        required: ['request_id', 'row', 'ts', 'version', 'features', 'outputs', 'label'],
        properties: {
          request_id: { type: 'string' },
          row: { type: 'integer', minimum: 0 },
          ts: { type: 'string', format: 'date-time' },
          version: { type: 'string' },
          features: { ...numberMap, description: 'Numeric and categorical features by name; non-finite numbers are null.' },
          outputs: { ...numberMap, description: 'Outputs by name; non-finite numbers are null.' },
          label: { type: ['string', 'null'], description: 'Latest label posted for this row, or null.' },
        },
      },
      PredictionList: {
        type: 'object',
        required: ['predictions'],
        properties: { predictions: { type: 'array', items: { $ref: '#/components/schemas/Prediction' } } },
      },
      LabelsRequest: {
        type: 'object',
        required: ['labels'],
        additionalProperties: false,
        properties: {
          labels: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              required: ['request_id', 'label'],
              additionalProperties: false,
              properties: {
                request_id: { type: 'string', minLength: 1 },
                row: { type: 'integer', minimum: 0, default: 0 },
                label: { type: ['string', 'number', 'boolean'] },
              },
            },
          },
        },
      },
      LabelsAccepted: {
        type: 'object',
        required: ['accepted'],
        properties: { accepted: { type: 'integer', minimum: 0 } },
      },
      DriftReport: {
        type: 'object',
        description: 'Same shape as `modelwatch report` (DESIGN §2).',
        required: ['reference', 'current', 'features', 'dataset'],
        properties: {
          reference: { type: 'object', properties: { rows: { type: 'integer' } } },
          current: { type: 'object', properties: { rows: { type: 'integer' } } },
          features: {
            type: 'array',
            items: {
              type: 'object',
              required: ['name', 'kind', 'method', 'score', 'threshold', 'drifted'],
              properties: {
                name: { type: 'string' },
                kind: { type: 'string', enum: ['numeric', 'categorical'] },
                method: { type: 'string' },
                score: { type: ['number', 'null'] },
                threshold: { type: 'number' },
                drifted: { type: 'boolean' },
                stats: { type: 'object' },
                quality: { type: 'object' },
              },
            },
          },
          dataset: {
            type: 'object',
            properties: {
              features: { type: 'integer' },
              drifted_features: { type: 'integer' },
              share: { type: 'number' },
              drifted: { type: 'boolean' },
            },
          },
        },
      },
      Performance: {
        type: 'object',
        description: 'Measured metrics over labelled rows, label coverage, and the label-free (CBPE) estimate.',
        properties: {
          model: { type: 'string' },
          window: { $ref: '#/components/schemas/Window' },
          prediction: { type: ['object', 'null'], description: 'How the prediction is read from the outputs.' },
          rows: { type: 'integer', minimum: 0 },
          labelled_rows: { type: 'integer', minimum: 0 },
          label_coverage: { type: ['number', 'null'] },
          measured: { type: ['object', 'null'], description: 'Classification or regression metrics (scikit-learn definitions).' },
          estimated: { type: ['object', 'null'], description: 'CBPE estimate; null for regression.' },
        },
      },
      Window: {
        type: 'object',
        properties: { from: { type: 'string', format: 'date-time' }, to: { type: 'string', format: 'date-time' } },
      },
      Health: {
        type: 'object',
        description: 'One summary of a model over a window.',
        properties: {
          model: { type: 'string' },
          window: { $ref: '#/components/schemas/Window' },
          traffic: {
            type: 'object',
            properties: {
              requests: { type: 'integer' },
              rows: { type: 'integer' },
              errors: { type: 'integer' },
              error_rate: { type: 'number' },
              latency_ms: {
                type: 'object',
                properties: {
                  p50: { type: ['number', 'null'] },
                  p95: { type: ['number', 'null'] },
                  p99: { type: ['number', 'null'] },
                },
              },
            },
          },
          drift: { type: ['object', 'null'], description: 'Dataset and per-feature drift.' },
          drift_error: { type: 'string', description: 'Why drift was taken from the last stored run, when it was.' },
          data_quality: { type: ['object', 'null'] },
          performance: {
            type: 'object',
            properties: {
              rows: { type: 'integer' },
              labelled_rows: { type: 'integer' },
              label_coverage: { type: ['number', 'null'] },
              measured: { type: ['object', 'null'] },
              estimated: { type: ['object', 'null'] },
            },
          },
          alerts: { type: 'array', items: { type: 'object' } },
        },
      },
    },
  },
  paths: {
    '/healthz': {
      get: {
        summary: 'Liveness',
        operationId: 'healthz',
        responses: {
          '200': {
            description: 'Alive',
            content: {
              'application/json': {
                schema: { type: 'object', properties: { status: { type: 'string', const: 'ok' } } },
              },
            },
          },
        },
      },
    },
    '/readyz': {
      get: {
        summary: 'Readiness: store reachable and migrations applied',
        operationId: 'readyz',
        responses: {
          '200': {
            description: 'Ready',
            content: {
              'application/json': {
                schema: { type: 'object', properties: { status: { type: 'string', const: 'ready' } } },
              },
            },
          },
          '503': errorResponse('Not ready'),
        },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus exposition of the service metrics',
        operationId: 'metrics',
        responses: {
          '200': { description: 'Prometheus text format 0.0.4', content: { 'text/plain': { schema: { type: 'string' } } } },
        },
      },
    },
    '/openapi.json': {
      get: {
        summary: 'This document',
        operationId: 'openapi',
        responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    },
    '/api/v1/models': {
      get: {
        summary: 'Models seen in stored traffic',
        operationId: 'listModels',
        security: [{ bearer: [] }],
        responses: { '200': json('ModelList'), ...protectedErrors },
      },
    },
    '/api/v1/models/{name}/predictions': {
      get: {
        summary: 'Stored prediction rows, newest first, with their labels',
        operationId: 'listPredictions',
        security: [{ bearer: [] }],
        parameters: [
          modelName,
          from,
          to,
          {
            name: 'limit',
            in: 'query',
            required: false,
            schema: { type: 'integer', minimum: 1, maximum: 10000, default: 100 },
          },
          { name: 'version', in: 'query', required: false, schema: { type: 'string' } },
        ],
        responses: { '200': json('PredictionList'), ...modelErrors },
      },
    },
    '/api/v1/models/{name}/health': {
      get: {
        summary: 'Traffic, drift, data quality, performance and active alerts in one summary',
        operationId: 'modelHealth',
        security: [{ bearer: [] }],
        parameters: [modelName, from, to],
        responses: { '200': json('Health'), ...modelErrors },
      },
    },
    '/api/v1/models/{name}/drift': {
      get: {
        summary: 'Drift of the window against the reference window',
        operationId: 'modelDrift',
        security: [{ bearer: [] }],
        parameters: [
          modelName,
          from,
          to,
          timeParam('reference_from', 'Reference window start.'),
          timeParam('reference_to', 'Reference window end.'),
          {
            name: 'reference_id',
            in: 'query',
            required: false,
            description: 'A stored reference id (instead of reference_from/reference_to). Default: the newest stored reference, else the first hour of traffic.',
            schema: { type: 'string' },
          },
          {
            name: 'segment_by',
            in: 'query',
            required: false,
            description: 'Also report drift per segment: `version`, or `feature:<name>` for a categorical feature.',
            schema: { type: 'string', pattern: '^(?:version|feature:.+)$' },
          },
        ],
        responses: { '200': json('DriftReport'), ...modelErrors },
      },
    },
    '/api/v1/models/{name}/performance': {
      get: {
        summary: 'Measured performance over labelled rows, label coverage, label-free estimate',
        operationId: 'modelPerformance',
        security: [{ bearer: [] }],
        parameters: [modelName, from, to],
        responses: { '200': json('Performance'), ...modelErrors },
      },
    },
    '/ingest/kserve': {
      post: {
        summary: 'Receive a KServe InferenceLogger CloudEvent (HTTP binary mode)',
        description:
          'Request and response events of one call share `ce-id` and are paired, then stored like a sidecar capture. ' +
          'The body is the raw V2 request or response body; its content type is kept as sent.',
        operationId: 'kserveEvent',
        parameters: [
          {
            name: 'ce-type',
            in: 'header',
            required: true,
            schema: {
              type: 'string',
              enum: ['org.kubeflow.serving.inference.request', 'org.kubeflow.serving.inference.response'],
            },
          },
          { name: 'ce-id', in: 'header', required: true, schema: { type: 'string' } },
          { name: 'ce-specversion', in: 'header', required: true, schema: { type: 'string', const: '1.0' } },
          { name: 'ce-time', in: 'header', required: false, schema: { type: 'string', format: 'date-time' } },
          { name: 'ce-inferenceservicename', in: 'header', required: false, schema: { type: 'string' } },
          { name: 'ce-namespace', in: 'header', required: false, schema: { type: 'string' } },
          { name: 'ce-component', in: 'header', required: false, schema: { type: 'string' } },
          { name: 'ce-endpoint', in: 'header', required: false, schema: { type: 'string' } },
          {
            name: 'ce-metadata',
            in: 'header',
            required: false,
            description: 'JSON object of allow-listed request headers (`map[string][]string`).',
            schema: { type: 'string' },
          },
        ],
        requestBody: {
          required: true,
          content: { '*/*': { schema: { type: 'string', format: 'binary' } } },
        },
        responses: {
          '202': {
            description: 'Accepted',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['accepted', 'id'],
                  properties: { accepted: { type: 'boolean', const: true }, id: { type: 'string' } },
                },
              },
            },
          },
          '400': errorResponse('Missing or invalid CloudEvents attribute; the message names it.'),
          '413': errorResponse('Event body too large.'),
          '415': errorResponse('Structured-mode CloudEvent (send binary mode).'),
        },
      },
    },
    '/api/v1/labels': {
      post: {
        summary: 'Post ground-truth labels; joined to predictions by request id and row',
        operationId: 'postLabels',
        security: [{ bearer: [] }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/LabelsRequest' } } },
        },
        responses: {
          '202': json('LabelsAccepted', 'Accepted'),
          ...protectedErrors,
          '413': errorResponse('Body too large.'),
          '415': errorResponse('Body is not JSON.'),
        },
      },
    },
  },
} as const;
