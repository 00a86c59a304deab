import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import busboy from "busboy";
import type { FileStore } from "@codeinterp/files";
import { BlobTooLargeError } from "@codeinterp/workspace";
import type { PutResult } from "@codeinterp/workspace";
import { HttpError } from "../errors";

export interface ReceivedUpload {
  /** As the client sent it (not yet sanitised). */
  filename: string;
  /** The part's Content-Type as busboy parsed it (busboy defaults a missing one to text/plain). */
  clientType: string;
  stored: PutResult;
}

export interface ReceiveOptions {
  files: Pick<FileStore, "receive" | "discard">;
  maxBytes: number;
  /** Name of the form field carrying the file (default `file`). */
  field?: string;
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
 * Streams the first file part named `field` of a multipart request into the blob store; nothing is
 * buffered in memory. Other fields and file parts are read and discarded. Rejects with an HttpError:
 * 400 `invalid_multipart` (not multipart, malformed), 400 `missing_file` (no such file part), 413
 * `payload_too_large` (over `maxBytes`; the store removes its temp file, so nothing is kept). `stored` is
 * received through the FileStore (it holds a spare copy): the caller commits or discards it.
 */
export function receiveUpload(req: IncomingMessage, opts: ReceiveOptions): Promise<ReceivedUpload> {
  const field = opts.field ?? "file";
  if (hungUp(req)) return Promise.reject(uploadInterrupted());
  return new Promise<ReceivedUpload>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        // Browsers send raw UTF-8 in `filename="..."`; busboy's default would read it as latin1.
        defParamCharset: "utf8",
        // One byte over the limit reaches the store, which then refuses it; busboy skips the rest of the
        // part instead of waiting on a stream that is gone.
        limits: { fileSize: opts.maxBytes + 1, fields: 100, fieldSize: 64 * 1024, parts: 200, headerPairs: 100 },
      });
    } catch {
      reject(new HttpError(400, "invalid_multipart", "expected a multipart/form-data body with a `file` part"));
      return;
    }

    let settled = false;
    let fileStream: Readable | null = null;
    let put: Promise<PutResult> | null = null;
    let upload: Omit<ReceivedUpload, "stored"> | null = null;

    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      // A put that still completes (the file part had arrived whole) is nobody's.
      put?.then((stored) => opts.files.discard([stored])).catch(() => undefined);
      req.unpipe(bb);
      // Drain what the client still sends so the answer can be read and the connection kept.
      req.resume();
      if (fileStream && !fileStream.destroyed) fileStream.destroy(new Error("upload aborted"));
      reject(err);
    };

    bb.on("file", (name, stream, info) => {
      if (name !== field || put || settled) {
        stream.resume();
        return;
      }
      fileStream = stream;
      upload = { filename: info.filename ?? "", clientType: info.mimeType ?? "" };
      put = opts.files.receive(stream, { maxBytes: opts.maxBytes });
      // Over the limit: answer at once rather than after the rest of the body.
      put.catch((err: unknown) => fail(err instanceof BlobTooLargeError ? payloadTooLarge(opts.maxBytes) : err));
    });
    bb.on("error", () =>
      fail(new HttpError(400, "invalid_multipart", "the multipart body is malformed or incomplete")),
    );
    bb.on("close", () => {
      if (settled) return;
      if (!put || !upload) {
        fail(new HttpError(400, "missing_file", `the request has no file part named \`${field}\``));
        return;
      }
      const meta = upload;
      put.then(
        (stored) => {
          if (settled) return;
          settled = true;
          resolve({ ...meta, stored });
        },
        () => undefined, // handled by the catch above
      );
    });
    req.on("close", () => {
      if (!req.complete) fail(uploadInterrupted());
    });
    req.pipe(bb);
  });
}
