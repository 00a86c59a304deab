import { pino } from "pino";
import type { Logger as PinoLogger, LevelWithSilent } from "pino";

export type Logger = PinoLogger;

/**
 * Structured JSON logs. Code, file contents and secrets must never reach a log line: callers log ids and
 * sizes, and these paths are redacted as a second line of defence.
 */
export function createLogger(opts: {
  name: string;
  level: LevelWithSilent;
  destination?: pino.DestinationStream;
}): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level,
      base: { service: opts.name },
      redact: {
        paths: [
          "code",
          "*.code",
          "authorization",
          "*.authorization",
          "req.headers.authorization",
          "token",
          "*.token",
          "key",
          "*.key",
          "password",
          "*.password",
          "stdout",
          "stderr",
          "*.stdout",
          "*.stderr",
        ],
        censor: "[redacted]",
      },
      serializers: { err: pino.stdSerializers.err },
    },
    opts.destination,
  );
}
