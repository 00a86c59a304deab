// Product functions the bench calls directly (re-exported in one place).
export { createEventPublisher, createRedis, executionLogKey } from "@codeinterp/queue";
export { registerExecutionFile as registerExecutionFileForBench } from "@codeinterp/db";
