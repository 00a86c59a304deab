import type { Queue } from "bullmq";
import type { Db } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import type { EventSubscriber, Redis } from "@codeinterp/queue";
import type { BlobStore } from "@codeinterp/workspace";
import type { ApiEnv } from "./env";
import type { FinishedExecutionCache } from "./finished-cache";

export type ReadinessCheck = () => Promise<Record<string, "ok" | "down">>;

/** Everything the HTTP layer needs, built by main.ts (or a test) and passed in. */
export interface ApiDeps {
  env: Pick<
    ApiEnv,
    "ADMIN_TOKEN" | "EXECUTION_TIMEOUT_MS" | "MAX_EXECUTION_TIMEOUT_MS" | "MAX_CODE_BYTES" | "MAX_FILES_PER_EXECUTION" | "MAX_UPLOAD_BYTES" | "MAX_WAIT_MS" | "DATA_DIR"
    | "JUPYTER_KERNEL_IDLE_MS" | "JUPYTER_FILE_LINKS" | "JUPYTER_FILE_LINK_BASE_URL" | "JUPYTER_MAX_MESSAGE_BYTES" | "JUPYTER_SESSION_TTL_MS"
  >;
  db: Db;
  /** Content-addressed file storage under DATA_DIR (uploads and generated files). */
  blobs: BlobStore;
  log: Logger;
  executionQueue: Queue;
  /** Shown in Bull Board and /metrics with the execution queue when given. */
  maintenanceQueue?: Queue;
  events: EventSubscriber;
  /** Commands (not subscriber mode): cancel requests, event replays. */
  redis: Redis;
  queuePrefix: string;
  readiness: ReadinessCheck;
  /** Finished executions' responses (see finished-cache.ts); without it every status read goes to Postgres. */
  finished?: FinishedExecutionCache;
}
