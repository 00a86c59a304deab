export { createFileStore } from "./file-store";
export type { Committed, FileStore, FileStoreOptions } from "./file-store";
export { createBlobCache } from "./blob-cache";
export type { BlobCache, BlobCacheStats } from "./blob-cache";
export { createS3BlobStore } from "./s3-blob-store";
export type { S3BlobStore, S3BlobStoreOptions } from "./s3-blob-store";
export { createS3Client, openBlobStore } from "./open-blob-store";
export { STALE_TEMP_MS, startStaleTempSweep } from "./stale-temp";
