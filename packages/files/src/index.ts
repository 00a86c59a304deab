export { createFileStore } from "./file-store";
export type { Committed, FileStore, FileStoreOptions } from "./file-store";
