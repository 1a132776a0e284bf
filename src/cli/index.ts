export { runCli, helpText, packageVersion } from './run.js';
export type { CliIo } from './run.js';
export { UsageError, parseFlags } from './command.js';
export type { Command } from './command.js';
export { commands } from './commands/index.js';
export { serveRoles } from './serve.js';
export type { RoleSpec, ServeRolesOptions } from './serve.js';
export { roles } from './roles.js';
export type { RoleStart } from './roles.js';
