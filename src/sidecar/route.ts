import { peekModelFromPath, type PathModel } from '../protocol/model-path.js';

/** Model and version named by an inference path (`version` is '' when the path names none). */
export type InferTarget = PathModel;

/**
 * The model and version when `method`/`url` is a V2 REST inference call
 * (`POST /v2/models/{m}[/versions/{v}]/infer`), else `undefined`. String scans only (hot path).
 */
export function matchInferPath(method: string, url: string): InferTarget | undefined {
  return method === 'POST' ? peekModelFromPath(url) : undefined;
}
