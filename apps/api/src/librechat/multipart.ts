import type { IncomingMessage } from "node:http";
import busboy from "busboy";
import type { FileStore } from "@codeinterp/files";
import { BlobTooLargeError } from "@codeinterp/workspace";
import type { PutResult } from "@codeinterp/workspace";
import { HttpError } from "../errors";
import { hungUp, payloadTooLarge, uploadInterrupted } from "../files/upload";
import type { ReceivedUpload } from "../files/upload";

export interface ReceivedForm {
  /** Text fields (the first value of each name). */
  fields: Record<string, string>;
  files: Array<ReceivedUpload | { filename: string; error: "too_large" }>;
}

/**
 * LibreChat's upload form (`packages/api/src/files/code/form.ts`): text fields `kind`, `id`, `version`
 * (Gen-1: `entity_id`) before one or more `file` parts. Like `receiveUpload` (files/upload.ts), every file
 * is received through the FileStore for the caller to commit or discard; nothing is buffered. With
 * `maxFiles: 1` a file over the limit fails the request with 413; in a batch it is reported per file.
 */
export function receiveForm(
  req: IncomingMessage,
  opts: { files: Pick<FileStore, "receive" | "discard">; maxBytes: number; maxFiles: number },
): Promise<ReceivedForm> {
  if (hungUp(req)) return Promise.reject(uploadInterrupted());
  return new Promise<ReceivedForm>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        defParamCharset: "utf8",
        preservePath: true,
        limits: {
          fileSize: opts.maxBytes + 1,
          files: opts.maxFiles,
          fields: 50,
          fieldSize: 64 * 1024,
          parts: opts.maxFiles + 50,
          headerPairs: 100,
        },
      });
    } catch {
      reject(new HttpError(400, "invalid_multipart", "Invalid content type. Must be multipart/form-data."));
      return;
    }
    const fields: Record<string, string> = {};
    const puts: Array<Promise<ReceivedForm["files"][number]>> = [];
    let settled = false;

    const dropAll = () => {
      for (const p of puts) {
        // Best effort: an unsettled spare copy is removed by the blob store's sweep.
        p.then((f) => ("stored" in f ? opts.files.discard([f.stored]) : undefined)).catch(() => undefined);
      }
    };
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      dropAll();
      req.unpipe(bb);
      req.resume();
      reject(err);
    };

    bb.on("field", (name, value) => {
      if (!(name in fields)) fields[name] = value;
    });
    bb.on("file", (name, stream, info) => {
      if (name !== "file" || settled) {
        stream.resume();
        return;
      }
      // preservePath keeps LibreChat's nested names (`filepath`); only the base name is ours to keep.
      const filename = (info.filename ?? "").split(/[\\/]/).pop() ?? "";
      const put: Promise<PutResult> = opts.files.receive(stream, { maxBytes: opts.maxBytes });
      puts.push(
        put.then(
          (stored): ReceivedUpload => ({ filename, clientType: info.mimeType ?? "", stored }),
          (err: unknown) => {
            if (!(err instanceof BlobTooLargeError)) throw err;
            if (opts.maxFiles === 1) fail(payloadTooLarge(opts.maxBytes));
            return { filename, error: "too_large" as const };
          },
        ),
      );
      // A failure other than size (disk, store) fails the request.
      puts[puts.length - 1]?.catch(fail);
    });
    bb.on("error", () =>
      fail(new HttpError(400, "invalid_multipart", "the multipart body is malformed or incomplete")),
    );
    bb.on("close", () => {
      if (settled) return;
      if (puts.length === 0) {
        fail(new HttpError(400, "missing_file", "No files provided"));
        return;
      }
      Promise.all(puts).then(
        (files) => {
          if (settled) {
            void opts.files.discard(files.flatMap((f) => ("stored" in f ? [f.stored] : [])));
            return;
          }
          settled = true;
          resolve({ fields, files });
        },
        () => undefined, // failed above
      );
    });
    req.on("close", () => {
      if (!req.complete) fail(uploadInterrupted());
    });
    req.pipe(bb);
  });
}
