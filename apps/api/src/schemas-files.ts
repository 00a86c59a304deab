import { z } from "zod";
import { FileInfo, GeneratedFile } from "./schemas";

// Schemas of the files, listing and context routes: they validate requests and generate /openapi.json.

const idString = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\u0000-\u001f\u007f]+$/, "must not contain control characters");

export const FileParams = z.object({ id: z.uuid() });
export const MessageParams = z.object({ messageId: idString });
export const ChatParams = z.object({ chatId: idString });

export const FileLookupQuery = z.object({
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "must be a lowercase hex sha256")
    .meta({ description: "Content hash" }),
  name: z
    .string()
    .min(1)
    .max(1000)
    .optional()
    .meta({ description: "Only files stored under this name (sanitised as uploads are)" }),
});

export const FileLookup = z.object({ files: z.array(FileInfo) }).meta({ id: "FileLookup" });

/** The multipart body of an upload (documentation only: the route parses it as a stream). */
export const UploadBody = z
  .object({
    file: z.string().meta({
      format: "binary",
      description: "The file. Only the first part named `file` is stored; other parts are ignored.",
    }),
  })
  .meta({ id: "UploadRequest" });

/** An upload's metadata; files produced by code also say where they came from. */
export const FileMetadata = FileInfo.extend({
  path: z.string().optional().meta({ description: "Generated files: path relative to /mnt/data" }),
  messageId: z.string().optional(),
  executionId: z.string().optional(),
  derivedFromId: z
    .string()
    .nullable()
    .optional()
    .meta({ description: "Generated files: the attachment this file is a changed copy of" }),
}).meta({ id: "FileMetadata" });

export const MessageFiles = z
  .object({ messageId: z.string(), files: z.array(GeneratedFile) })
  .meta({ id: "MessageFiles" });

export const ChatFiles = z
  .object({
    chatId: z.string(),
    totalFiles: z.number().int(),
    messages: z.record(z.string(), z.array(GeneratedFile)).meta({ description: "Generated files by messageId" }),
  })
  .meta({ id: "ChatFiles" });

export const FilePreview = z
  .discriminatedUnion("kind", [
    z.object({ kind: z.literal("columns"), columns: z.array(z.string()).meta({ description: "CSV/TSV header row" }) }),
    z.object({ kind: z.literal("sheets"), sheets: z.array(z.string()).meta({ description: "Workbook sheet names" }) }),
    z.object({
      kind: z.literal("keys"),
      keys: z.array(z.string()).meta({ description: "JSON top-level keys (of the first element for an array)" }),
      array: z.boolean(),
    }),
    z.object({ kind: z.literal("text"), firstLine: z.string() }),
  ])
  .meta({ id: "FilePreview" });

export const ContextFile = z
  .object({
    id: z.string(),
    source: z.enum(["attachment", "generated"]),
    path: z.string().meta({ description: "relative to /mnt/data" }),
    name: z.string(),
    size: z.number(),
    mimeType: z.string(),
    preview: FilePreview.nullable(),
  })
  .meta({ id: "ContextFile" });

export const MessageContext = z
  .object({
    messageId: z.string(),
    files: z.array(ContextFile),
    prompt: z.string().meta({ description: "A text block for the model's instructions describing /mnt/data" }),
  })
  .meta({ id: "MessageContext" });

export type FilePreviewValue = z.infer<typeof FilePreview>;
export type ContextFileValue = z.infer<typeof ContextFile>;
