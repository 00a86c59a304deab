import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import busboy from "busboy";
import type { FileStore } from "@codeinterp/files";
import { BlobTooLargeError } from "@codeinterp/workspace";
import type { PutResult } from "@codeinterp/workspace";
import { HttpError } from "../errors";

export interface ReceivedUpload {
  /** As the client sent it (not yet sanitised; the base name of a path). */
  filename: string;
  /** The part's Content-Type as busboy parsed it (busboy defaults a missing one to text/plain). */
  clientType: string;
  stored: PutResult;
}

export interface ReceivedForm {
  /** Text fields (the first value of each name). */
  fields: Record<string, string>;
  files: Array<ReceivedUpload | { filename: string; error: "too_large" }>;
}

export interface MultipartOptions {
  files: Pick<FileStore, "receive" | "discard">;
  maxBytes: number;
  /** With 1, a file over `maxBytes` fails the request (413); in a batch it is reported per file. */
  maxFiles: number;
  /** Name of the form field carrying the files (default `file`); other file parts are read and dropped. */
  field?: string;
  /** How a request that is not multipart, or has no such file part, is told so: each surface has its wording. */
  messages?: { notMultipart: string; missingFile: string };
}

export const uploadInterrupted = () => new HttpError(400, "invalid_multipart", "the upload was interrupted");

/**
 * The client hung up before its body was read (say, while the request waited on authentication): its
 * 'close' is past, so a listener added now would never hear it, and nothing more arrives. Readers of a
 * body answer at once instead of waiting forever.
 */
export const hungUp = (req: IncomingMessage) => req.destroyed && !req.complete;

export const payloadTooLarge = (maxBytes: number) =>
  new HttpError(413, "payload_too_large", `the file is larger than the limit of ${maxBytes} bytes`, { maxBytes });

/**
 * The one multipart reader (`/v1/files` and LibreChat's uploads): streams each file part named `field` into
 * the blob store through the FileStore (nothing is buffered in memory) and collects the text fields. Every
 * received file holds a spare copy: the caller commits or discards it. Rejects with an HttpError: 400
 * `invalid_multipart` (not multipart, malformed, interrupted), 400 `missing_file` (no such file part), 413
 * `payload_too_large` (one file over `maxBytes` when `maxFiles` is 1; the store removes its temp file).
 */
export function receiveMultipart(req: IncomingMessage, opts: MultipartOptions): Promise<ReceivedForm> {
  const field = opts.field ?? "file";
  const messages = opts.messages ?? {
    notMultipart: `expected a multipart/form-data body with a \`${field}\` part`,
    missingFile: `the request has no file part named \`${field}\``,
  };
  if (hungUp(req)) return Promise.reject(uploadInterrupted());
  return new Promise<ReceivedForm>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        // Browsers send raw UTF-8 in `filename="..."`; busboy's default would read it as latin1.
        defParamCharset: "utf8",
        // Clients send nested names (LibreChat's `filepath`); only the base name is ours to keep.
        preservePath: true,
        // One byte over the limit reaches the store, which then refuses it; busboy skips the rest of the
        // part instead of waiting on a stream that is gone.
        limits: {
          fileSize: opts.maxBytes + 1,
          // File parts of other names count too: the `field` parts past maxFiles are dropped below instead.
          files: opts.maxFiles + 199,
          fields: 100,
          fieldSize: 64 * 1024,
          parts: opts.maxFiles + 199,
          headerPairs: 100,
        },
      });
    } catch {
      reject(new HttpError(400, "invalid_multipart", messages.notMultipart));
      return;
    }
    const fields: Record<string, string> = {};
    const puts: Array<Promise<ReceivedForm["files"][number]>> = [];
    const streams: Readable[] = [];
    let settled = false;

    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      for (const p of puts) {
        // A put that still completes (its part had arrived whole) is nobody's. Best effort: an unsettled
        // spare copy is removed by the blob store's sweep.
        p.then((f) => ("stored" in f ? opts.files.discard([f.stored]) : undefined)).catch(() => undefined);
      }
      req.unpipe(bb);
      // Drain what the client still sends so the answer can be read and the connection kept.
      req.resume();
      for (const s of streams) if (!s.destroyed) s.destroy(new Error("upload aborted"));
      reject(err);
    };

    bb.on("field", (name, value) => {
      if (!(name in fields)) fields[name] = value;
    });
    bb.on("file", (name, stream, info) => {
      if (name !== field || settled || puts.length >= opts.maxFiles) {
        stream.resume();
        return;
      }
      streams.push(stream);
      const filename = (info.filename ?? "").split(/[\\/]/).pop() ?? "";
      const put: Promise<PutResult> = opts.files.receive(stream, { maxBytes: opts.maxBytes });
      const received = put.then(
        (stored): ReceivedUpload => ({ filename, clientType: info.mimeType ?? "", stored }),
        (err: unknown) => {
          if (!(err instanceof BlobTooLargeError)) throw err;
          // Over the limit: answer at once rather than after the rest of the body.
          if (opts.maxFiles === 1) fail(payloadTooLarge(opts.maxBytes));
          return { filename, error: "too_large" as const };
        },
      );
      puts.push(received);
      // A failure other than size (disk, store) fails the request.
      received.catch(fail);
    });
    bb.on("error", () =>
      fail(new HttpError(400, "invalid_multipart", "the multipart body is malformed or incomplete")),
    );
    bb.on("close", () => {
      if (settled) return;
      if (puts.length === 0) {
        fail(new HttpError(400, "missing_file", messages.missingFile));
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

/** The first file part named `field` (default `file`) of a multipart request; see receiveMultipart. */
export async function receiveUpload(
  req: IncomingMessage,
  opts: Omit<MultipartOptions, "maxFiles">,
): Promise<ReceivedUpload> {
  const form = await receiveMultipart(req, { ...opts, maxFiles: 1 });
  const first = form.files[0];
  // With one file allowed, an oversized one has already failed the request.
  if (!first || !("stored" in first)) throw payloadTooLarge(opts.maxBytes);
  return first;
}
