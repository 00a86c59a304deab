// Product functions the bench calls directly (re-exported in one place).
export {
  cellKeyPrefix,
  createEventPublisher,
  createRedis,
  executionLogKey,
  parseExecutionRecord,
  poolOwnersKey,
} from "@codeinterp/queue";
export { registerExecutionFiles as registerExecutionFilesForBench } from "@codeinterp/db";
