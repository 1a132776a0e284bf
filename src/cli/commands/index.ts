import type { Command } from '../command.js';
import { roles } from '../roles.js';
import { singleRoleCommand } from './single-role.js';
import { upCommand } from './up.js';
import { reportCommand } from './report.js';
import { sidecarCommand } from './sidecar.js';
import { detectCommand } from './detect.js';
import { referenceCommand } from './reference.js';
import { shadowCommand } from './shadow.js';
import { demoCommand } from './demo.js';
import { demoServerCommand } from './demo-server.js';
import { alertsCommand, silenceCommand } from './alerts.js';

/**
 * Every `modelwatch` command by name, in help order. Add a command with one line here.
 */
export const commands: Record<string, Command> = {
  up: upCommand,
  sidecar: sidecarCommand,
  ingest: singleRoleCommand('ingest', 'consume the bus and store decoded rows in ClickHouse', () => roles.ingest),
  api: singleRoleCommand('api', 'serve the REST API, /metrics and /openapi.json', () => roles.api),
  report: reportCommand,
  detect: detectCommand,
  reference: referenceCommand,
  shadow: shadowCommand,
  demo: demoCommand,
  'demo-server': demoServerCommand,
  alerts: alertsCommand,
  silence: silenceCommand,
  'shadow-live': singleRoleCommand('shadow-live', 'score shadow.candidates on live bus traffic', () => roles.shadow),
};
