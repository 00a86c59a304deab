import { S3Client } from "@aws-sdk/client-s3";
import type { BlobStoreConfig } from "@codeinterp/config";
import type { Logger } from "@codeinterp/logger";
import { createBlobStore } from "@codeinterp/workspace";
import type { BlobStore } from "@codeinterp/workspace";
import { createBlobCache } from "./blob-cache";
import { createS3BlobStore } from "./s3-blob-store";

type S3Config = Extract<BlobStoreConfig, { kind: "s3" }>;

/**
 * An S3 client for S3-compatible servers as well as AWS. Two SDK defaults are changed: checksums only when an
 * operation requires them (the default sends streamed bodies `aws-chunked` with a trailing CRC, which Swift,
 * Ceph RGW and older gateways refuse with 501; sha256 is checked end to end by the store instead), and
 * timeouts that fail a request rather than only logging (a store that stops answering must turn into an
 * error the caller can act on, not a request hanging forever).
 */
export function createS3Client(
  cfg: Omit<S3Config, "kind" | "bucket" | "prefix" | "cacheDir" | "cacheBytes">,
): S3Client {
  return new S3Client({
    region: cfg.region,
    ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
    forcePathStyle: cfg.forcePathStyle,
    ...(cfg.credentials ? { credentials: cfg.credentials } : {}),
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000, throwOnRequestTimeout: true },
  });
}

/** The blob store the configuration names: the local directory, or a bucket with this process's cache. */
export function openBlobStore(cfg: BlobStoreConfig, log?: Logger): BlobStore {
  if (cfg.kind === "local") return createBlobStore(cfg.dataDir);
  return createS3BlobStore({
    client: createS3Client(cfg),
    bucket: cfg.bucket,
    prefix: cfg.prefix,
    cache: createBlobCache({ dir: cfg.cacheDir, maxBytes: cfg.cacheBytes }),
    ...(log ? { log } : {}),
  });
}
