import type { Queue } from "bullmq";
import type { z } from "zod";
import type { Db } from "@codeinterp/db";
import type { FileStore } from "@codeinterp/files";
import type { Logger } from "@codeinterp/logger";
import type { EventSubscriber, ExecutionRouter, Redis } from "@codeinterp/queue";
import type { BlobStore } from "@codeinterp/workspace";
import type { ApiEnv } from "./env";
import type { FinishedExecutionCache } from "./finished-cache";
import type { LinkSigner } from "./links/signer";

/** Settings of the LibreChat surface (apps/api/src/librechat). */
export type LibreChatEnvKey = Extract<keyof ApiEnv, `LIBRECHAT_${string}`>;
/** Settings of the MCP server (apps/api/src/mcp). */
export type McpEnvKey = Extract<keyof ApiEnv, `MCP_${string}`>;
import type { Readiness } from "./schemas";

/** What /readyz reports, but its overall status (derived from `checks`). */
export type ReadinessReport = Omit<z.infer<typeof Readiness>, "status">;
export type ReadinessCheck = () => Promise<ReadinessReport>;

/** Everything the HTTP layer needs, built by main.ts (or a test) and passed in. */
export interface ApiDeps {
  env: Pick<
    ApiEnv,
    | "ADMIN_TOKEN"
    | "EXECUTION_TIMEOUT_MS"
    | "MAX_EXECUTION_TIMEOUT_MS"
    | "MAX_CODE_BYTES"
    | "MAX_FILES_PER_EXECUTION"
    | "MAX_UPLOAD_BYTES"
    | "MAX_WAIT_MS"
    | "DATA_DIR"
    | "SIGNED_LINK_TTL_S"
    | "SIGNED_LINK_MAX_TTL_S"
    | "PUBLIC_URL"
    | "KERNEL_MEMORY_MB"
    | "KERNEL_MEMORY_MAX_MB"
    | "JUPYTER_KERNEL_IDLE_MS"
    | "JUPYTER_FILE_LINKS"
    | "JUPYTER_FILE_LINK_BASE_URL"
    | "JUPYTER_MAX_MESSAGE_BYTES"
    | "JUPYTER_SESSION_TTL_MS"
  > &
    Pick<ApiEnv, LibreChatEnvKey | McpEnvKey>;
  db: Db;
  /** Content-addressed file storage under DATA_DIR (uploads and generated files), for reads. */
  blobs: BlobStore;
  /** Writes and deletes file content: the blob lifecycle (packages/files). */
  files: FileStore;
  log: Logger;
  /** The shared execution queue (Bull Board, /metrics). */
  executionQueue: Queue;
  /** Queues executions on the cell holding their message, or the shared queue (packages/queue/src/cells.ts). */
  executions: ExecutionRouter;
  /** Shown in Bull Board and /metrics with the execution queue when given. */
  maintenanceQueue?: Queue;
  events: EventSubscriber;
  /** Commands (not subscriber mode): cancel requests, event replays. */
  redis: Redis;
  queuePrefix: string;
  readiness: ReadinessCheck;
  /** Signs and checks download links (links/signer.ts). */
  links: LinkSigner;
  /** Finished executions' responses (see finished-cache.ts); without it every status read goes to Postgres. */
  finished?: FinishedExecutionCache;
}
