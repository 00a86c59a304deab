import path from "node:path";
import { z } from "zod";
import { booleanFromEnv } from "./env";

/**
 * Where file content lives. Unset (or `file:`): the local directory `DATA_DIR/blobs`, the one-box default.
 * `s3://bucket/prefix`: an S3-compatible bucket, with a size-bounded cache of blobs on this machine's disk.
 * Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) when set; unset, the SDK's
 * own chain (instance profile, web identity) is used.
 */
export const blobStoreEnvShape = {
  BLOB_STORE_URL: z
    .string()
    .optional()
    .refine(
      (v) => v === undefined || v === "" || v === "file:" || /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/.test(v),
      {
        message: "BLOB_STORE_URL must be file: or s3://bucket[/prefix]",
      },
    ),
  S3_ENDPOINT: z.url().optional(),
  S3_REGION: z.string().min(1).default("us-east-1"),
  /** Default: true when S3_ENDPOINT is set (most S3-compatible servers want bucket-in-path URLs). */
  S3_FORCE_PATH_STYLE: z.enum(["1", "0", "true", "false", "yes", "no", "on", "off", ""]).optional(),
  /** The local cache of blobs fetched from (or put to) the bucket, least recently used evicted first. */
  BLOB_CACHE_MB: z.coerce.number().int().min(1).default(2048),
  AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
  AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  AWS_SESSION_TOKEN: z.string().min(1).optional(),
};

type BlobStoreEnv = z.infer<z.ZodObject<typeof blobStoreEnvShape>> & { DATA_DIR: string };

export type BlobStoreConfig =
  | { kind: "local"; dataDir: string }
  | {
      kind: "s3";
      bucket: string;
      /** "" or ending in "/". */
      prefix: string;
      endpoint?: string;
      region: string;
      forcePathStyle: boolean;
      credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
      cacheDir: string;
      cacheBytes: number;
    };

/**
 * The blob store an app opens. `role` names the process's own cache directory (`DATA_DIR/blob-cache/<role>`):
 * each process bounds and evicts its own cache, so two processes sharing a DATA_DIR never count each other's.
 */
export function loadBlobStore(env: BlobStoreEnv, role: string): BlobStoreConfig {
  const url = env.BLOB_STORE_URL;
  if (url === undefined || url === "" || url === "file:") return { kind: "local", dataDir: env.DATA_DIR };
  const u = new URL(url);
  const prefix = u.pathname.replace(/^\/+|\/+$/g, "");
  const forcePathStyle = booleanFromEnv(env.S3_ENDPOINT !== undefined).parse(env.S3_FORCE_PATH_STYLE);
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: env.AWS_ACCESS_KEY_ID,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
          ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  return {
    kind: "s3",
    bucket: u.hostname,
    prefix: prefix ? `${prefix}/` : "",
    ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT } : {}),
    region: env.S3_REGION,
    forcePathStyle,
    ...(credentials ? { credentials } : {}),
    cacheDir: path.join(path.resolve(env.DATA_DIR), "blob-cache", role),
    cacheBytes: env.BLOB_CACHE_MB * 1024 * 1024,
  };
}
