import mime from "mime-types";

const TOKEN = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** Types that say nothing about the content: the name decides instead. */
const GENERIC = new Set([
  "application/octet-stream",
  "binary/octet-stream",
  "application/unknown",
  "application/x-unknown",
  "unknown/unknown",
  "application/download",
  "application/x-download",
  "application/force-download",
]);

/** Types clients send for whole families of files (busboy reports a part without a type as text/plain). */
const WEAK = new Set(["text/plain", "application/vnd.ms-excel"]);

/** A bare `type/subtype`, lowercase, or null when the value is not a well-formed media type. */
export function normaliseMediaType(value: string | undefined | null): string | null {
  const bare = String(value ?? "")
    .split(";")[0]!
    .trim()
    .toLowerCase();
  return TOKEN.test(bare) ? bare : null;
}

/**
 * The MIME type recorded for an upload: the client's part type when it is specific; otherwise what the
 * name says (mime-types); a weak client type (text/plain, application/vnd.ms-excel for a .csv) only when
 * the name says nothing; else application/octet-stream.
 */
export function mimeTypeForUpload(clientType: string | undefined | null, name: string): string {
  const client = normaliseMediaType(clientType);
  if (client && !GENERIC.has(client) && !WEAK.has(client)) return client;
  const byName = mime.lookup(name);
  if (byName) return byName;
  if (client && WEAK.has(client)) return client;
  return "application/octet-stream";
}
