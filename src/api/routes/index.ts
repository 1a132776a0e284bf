import type { RuntimeContext } from '../../runtime/context.js';
import type { ApiApp } from '../openapi.js';
import { alertRoutes } from './alerts.js';
import { driftRoutes } from './drift.js';
import { healthRoutes } from './health.js';
import { historyRoutes } from './history.js';
import { kserveIntakeRoutes } from './kserve.js';
import { performanceRoutes } from './performance.js';
import { labelRoutes } from './labels.js';
import { modelRoutes } from './models.js';
import { multivariateRoutes } from './multivariate.js';
import { systemRoutes } from './system.js';
import { referenceRoutes } from './references.js';
import { shadowRoutes } from './shadow.js';

/**
 * Mounts one group of routes on the app. Routes under `/api/v1/` get bearer auth, body limits and
 * JSON errors from the app's middleware; a mounter only adds handlers, each with `app.openapi(createRoute(…))`
 * so its request schemas both validate and document it.
 */
export type RouteMounter = (app: ApiApp, ctx: RuntimeContext) => void;

/** Every route group the API serves, in mount order. Append new groups here (one line each). */
export const routeMounters: RouteMounter[] = [
  systemRoutes,
  modelRoutes,
  labelRoutes,
  kserveIntakeRoutes,
  driftRoutes,
  performanceRoutes,
  healthRoutes,
  referenceRoutes,
  shadowRoutes,
  historyRoutes,
  alertRoutes,
  multivariateRoutes,
];
