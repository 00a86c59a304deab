export {
  sanitizeFilename,
  uniqueNames,
  collisionKey,
  splitExtension,
  truncateToBytes,
  fitName,
  MAX_NAME_BYTES,
  FALLBACK_NAME,
} from "./sanitize";
export {
  VIRTUAL_ROOT,
  PathEscapeError,
  workspaceId,
  workspaceRelPath,
  workspaceDirFor,
  workspaceDirOfId,
  resolveInside,
  toKernelCode,
  fromKernelText,
  rewriteSandboxLinks,
} from "./paths";
export { snapshotWorkspace, diffSnapshots, entryChanged, hashFile, DEFAULT_EXCLUDED_NAMES } from "./snapshot";
export type {
  Snapshot,
  SnapshotEntry,
  SnapshotOptions,
  SnapshotDiff,
  DiffLimits,
  Skipped,
  SkipReason,
} from "./snapshot";
export {
  createBlobStore,
  withLocalBlob,
  isBlobKey,
  BlobTooLargeError,
  BlobCorruptError,
  BlobStoreUnavailableError,
  BlobNotFoundError,
  InvalidBlobKeyError,
  NotARegularFileError,
  FileReplacedError,
  FileSizeChangedError,
  OutsideDirectoryError,
} from "./blob-store";
export type { BlobStore, LocalBlobStore, LocalPathOf, PutResult, PutOptions, PutFileOptions } from "./blob-store";
export {
  prepareWorkspace,
  ensureWorkspaceDir,
  touchWorkspace,
  removeIdleWorkspaces,
  LAST_USED_MARKER,
  lastUsedMarkerFor,
} from "./prepare";
export type { LinkMode, Attachment, PrepareOptions, PrepareResult, PlacedFile } from "./prepare";
export {
  detectDiskBudget,
  createBudgetedDir,
  removeWorkspaceDir,
  startStaleBudgetSweep,
  DiskBudgetError,
} from "./disk-budget";
export type { DiskBudget } from "./disk-budget";
