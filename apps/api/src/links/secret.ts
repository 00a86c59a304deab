import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

export const SECRET_FILE = "signing-secret";

/**
 * SIGNED_LINK_SECRET, or the one kept in DATA_DIR (made on first start, like `npm start` makes the admin
 * token), so `npm start` needs no setting and every API process on the same DATA_DIR signs alike. The
 * file appears whole or not at all: written aside, then hard-linked into place (which fails if another
 * process got there first, and then its secret is the one read).
 */
export async function loadSigningSecret(env: {
  SIGNED_LINK_SECRET?: string | undefined;
  DATA_DIR: string;
}): Promise<string> {
  if (env.SIGNED_LINK_SECRET) return env.SIGNED_LINK_SECRET;
  const file = path.join(env.DATA_DIR, SECRET_FILE);
  const existing = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (existing?.trim()) return existing.trim();
  await mkdir(env.DATA_DIR, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600, flush: true });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  const secret = (await readFile(file, "utf8")).trim();
  if (!secret) throw new Error(`${file} is empty: remove it (a new secret is made) or set SIGNED_LINK_SECRET`);
  return secret;
}
