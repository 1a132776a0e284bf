/** Minimal structured logger port; JSON lines on stderr by default. Never log secrets. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Log levels in increasing severity. */
export const LogLevels = ['debug', 'info', 'warn', 'error', 'silent'] as const;
/** One of {@link LogLevels}. */
export type LogLevel = (typeof LogLevels)[number];

/** Creates a logger writing JSON lines to stderr at or above `level`. */
export function createLogger(level: LogLevel = 'info', component = 'modelwatch'): Logger {
  const min = LogLevels.indexOf(level);
  const write = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: Record<string, unknown>): void => {
    if (LogLevels.indexOf(lvl) < min) return;
    const line = JSON.stringify({ ts: new Date().toISOString(), level: lvl, component, msg, ...fields });
    process.stderr.write(line + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
