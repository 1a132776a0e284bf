import type { Hono } from 'hono';
import type { RuntimeContext } from '../../runtime/context.js';
import { kserveRoutes } from '../../ingest/index.js';
import { driftRoutes } from './drift.js';
import { healthRoutes } from './health.js';
import { performanceRoutes } from './performance.js';
import { labelRoutes } from './labels.js';
import { modelRoutes } from './models.js';
import { systemRoutes } from './system.js';

/**
 * Mounts one group of routes on the app. Routes under `/api/v1/` get bearer auth, body limits and
 * JSON errors from the app's middleware; a mounter only adds handlers.
 */
export type RouteMounter = (app: Hono, ctx: RuntimeContext) => void;

/**
 * Every route group the API serves, in mount order. Append new groups here (one line each) and
 * document their paths in `../openapi.ts`.
 */
export const routeMounters: RouteMounter[] = [
  systemRoutes,
  modelRoutes,
  labelRoutes,
  kserveRoutes,
  driftRoutes,
  performanceRoutes,
  healthRoutes,
];
