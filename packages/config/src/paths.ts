import path from "node:path";
import { fileURLToPath } from "node:url";

/** The checkout's root: packages/config/src → ../../.. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** Uploads, blobs and workspaces live here unless DATA_DIR says otherwise. */
export const defaultDataDir = path.join(repoRoot, ".data");
