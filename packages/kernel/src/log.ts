/** The subset of pino's logger this package uses, so callers can pass pino directly. */
export type LogFn = (obj: object | string, msg?: string) => void;

export type Log = {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
};

const noop: LogFn = () => {};

export const silentLog: Log = { debug: noop, info: noop, warn: noop, error: noop };
