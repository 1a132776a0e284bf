import { startApi } from '../api/server.js';
import { startIngest } from '../ingest/index.js';
import type { RunningRole, RuntimeContext } from '../runtime/context.js';
import { startSidecar } from '../sidecar/index.js';

/** Starts one role on a runtime context. */
export type RoleStart = (ctx: RuntimeContext) => Promise<RunningRole>;

/**
 * The role starters the CLI knows, in one place. A role whose module is not in this build yet is
 * `undefined`: `modelwatch up` skips it with a warning and its own command exits 1.
 */
export const roles: { sidecar?: RoleStart; ingest?: RoleStart; detect?: RoleStart; api: RoleStart } = {
  // TODO(wire): the gRPC proxy (`startGrpcProxy`) when `sidecar.grpcUpstream` is set.
  sidecar: (ctx) => startSidecar(ctx),
  ingest: (ctx) => startIngest(ctx),
  // TODO(wire): detect: startDetector from '../drift/index.js'
  api: startApi,
};
