import { z } from "zod";
import { MIN_EXECUTION_MEMORY_MB } from "@codeinterp/config";
import type { ExecutionMemoryBounds } from "@codeinterp/config";

// These schemas validate requests and generate /openapi.json: one source for both.

const idString = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\u0000-\u001f\u007f]+$/, "must not contain control characters");

export const ErrorBody = z
  .object({ error: z.object({ code: z.string(), message: z.string() }).loose() })
  .meta({ id: "Error" });

export const ApiKeyKind = z
  .enum(["user", "tenant"])
  .describe(
    "user: the key acts as its user only. tenant: the key may name an end user per request (X-End-User), each a codeinterp user of its own under the tenant; without one it acts as the tenant",
  )
  .meta({ id: "ApiKeyKind" });
export const CreateApiKeyBody = z
  .object({
    userId: idString.describe("The user (for a tenant key: the tenant). Names starting with librechat: are reserved"),
    kind: ApiKeyKind.default("user").optional(),
  })
  .strict()
  .meta({ id: "CreateApiKeyRequest" });
export const ApiKeyCreated = z
  .object({ id: z.string(), key: z.string(), userId: z.string(), kind: ApiKeyKind })
  .meta({ id: "ApiKey" });
export const ApiKeyInfo = z
  .object({
    id: z.string(),
    userId: z.string(),
    kind: ApiKeyKind,
    prefix: z.string().describe("The key's first characters"),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: "ApiKeyInfo" });
export const ApiKeyList = z.object({ apiKeys: z.array(ApiKeyInfo) }).meta({ id: "ApiKeyList" });
export const ApiKeyListQuery = z.object({ userId: idString.optional() }).strict();
export const ApiKeyParams = z.object({ id: z.uuid() });

export const ExecutionStatus = z
  .enum(["queued", "preparing", "running", "completed", "failed", "timed_out", "cancelled"])
  .meta({ id: "ExecutionStatus" });

const executionLimits = (memory: ExecutionMemoryBounds) =>
  z
    .object({
      memoryMb: z
        .number()
        .int()
        .min(MIN_EXECUTION_MEMORY_MB)
        .max(memory.maxMb, `this deployment allows at most ${memory.maxMb} MB per execution`)
        .optional()
        .describe(
          `Memory for the message's kernel while this execution runs, in MB (default ${memory.defaultMb}, at most ${memory.maxMb})`,
        ),
    })
    .strict()
    .meta({ id: "ExecutionLimits" });

export const createExecutionBody = (
  maxCodeBytes: number,
  maxTimeoutMs: number,
  maxFiles: number,
  memory: ExecutionMemoryBounds,
) =>
  z
    .object({
      chatId: idString,
      messageId: idString,
      code: z
        .string()
        .refine((c) => Buffer.byteLength(c, "utf8") <= maxCodeBytes, `code must be at most ${maxCodeBytes} bytes`),
      fileIds: z.array(z.uuid()).max(maxFiles).optional(),
      timeoutMs: z.number().int().min(100).max(maxTimeoutMs).optional(),
      limits: executionLimits(memory).optional(),
      idempotencyKey: z.string().min(1).max(200).optional(),
    })
    .strict()
    .meta({ id: "CreateExecutionRequest" });

export const FileInfo = z
  .object({
    id: z.string(),
    name: z.string(),
    size: z.number(),
    sha256: z.string(),
    mimeType: z.string(),
    createdAt: z.string(),
  })
  .meta({ id: "File" });

export const GeneratedFile = z
  .object({
    id: z.string(),
    name: z.string(),
    path: z.string().meta({ description: "relative to /mnt/data" }),
    size: z.number(),
    mimeType: z.string(),
    url: z.string(),
    derivedFromId: z.string().nullable().optional(),
  })
  .meta({ id: "GeneratedFile" });

export const Output = z
  .object({ type: z.string(), data: z.string().optional(), fileId: z.string().optional() })
  .meta({ id: "Output" });

export const ExecutionResult = z
  .object({
    stdout: z.string(),
    stderr: z.string(),
    outputs: z.array(Output),
    error: z.object({ ename: z.string(), evalue: z.string(), traceback: z.array(z.string()) }).nullable(),
  })
  .loose()
  .meta({ id: "ExecutionResult" });

export const Execution = z
  .object({
    id: z.string(),
    chatId: z.string(),
    messageId: z.string(),
    status: ExecutionStatus,
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    result: ExecutionResult.nullable(),
    failure: z
      .object({ code: z.string(), message: z.string() })
      .nullable()
      .describe(
        "Why the system could not run the code (status failed). Codes: kernel_died; worker_lost; gateway_unavailable (the kernel gateway did not answer: the code did not run within the retry budget, or it stopped answering while the code ran); gateway_restarted (the gateway stopped answering while the code ran and was restarted: the kernel and its variables are gone, the next execution gets a fresh kernel); kernel_start_failed; internal_error.",
      ),
    files: z.array(GeneratedFile),
    limits: z
      .object({
        memoryMb: z.number().int().nullable().describe("What the execution asked; null: the deployment default"),
      })
      .describe("What the execution asked for its kernel"),
  })
  .meta({ id: "Execution" });

export const ExecutionParams = z.object({ id: z.uuid() });
export const WaitQuery = z.object({ waitMs: z.coerce.number().int().min(0).optional() });

export const Health = z.object({ status: z.literal("ok") }).meta({ id: "Health" });
const GatewaySeen = z.object({
  reachable: z.boolean(),
  since: z.string().describe("When the gateway became reachable, or since when it has not answered"),
  lastError: z.string().nullable(),
  restarts: z.number().int().describe("Gateway restarts this worker saw (the server's start time changed)"),
  lastRestartAt: z.string().nullable(),
  sandboxed: z.boolean().describe("Kernels run in the bubblewrap sandbox"),
  egress: z.boolean().optional().describe("Sandboxed kernels reach the listed destinations through the egress proxy"),
  diskBudgetMb: z
    .number()
    .int()
    .nullable()
    .optional()
    .describe("Each workspace's disk budget in MB; null: workspaces have none"),
});
export const Readiness = z
  .object({
    status: z.enum(["ok", "unavailable"]),
    checks: z.record(z.string(), z.enum(["ok", "down"])),
    problems: z.array(z.string()).describe("What is wrong, in plain words (empty when ready)"),
    gateway: GatewaySeen.omit({ lastError: true })
      .nullable()
      .describe(
        "The kernel gateway as the live workers last saw it (the API itself never contacts it); null without a live worker",
      ),
    workers: z.array(z.object({ workerId: z.string(), lastBeatAt: z.string(), gateway: GatewaySeen.nullable() })),
    kernels: z
      .object({
        sandboxed: z.boolean().nullable(),
        network: z.enum(["none", "allowlist", "unrestricted", "unknown"]),
        warning: z.string().optional(),
        diskBudgetMb: z
          .number()
          .int()
          .nullable()
          .optional()
          .describe("Each workspace's disk budget in MB; null: workspaces have none"),
        diskWarning: z.string().optional().describe("Set when workspaces have no disk budget"),
      })
      .describe(
        "What live workers' kernels are promised: sandboxed kernels have no network (or only the operator's allowlist, through the egress proxy); unsandboxed ones carry a warning",
      ),
  })
  .meta({ id: "Readiness" });
