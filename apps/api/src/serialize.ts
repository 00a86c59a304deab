import type { ExecutionRow, FileRow } from "@codeinterp/db";
import { readExecution } from "./executions/service";

export const fileUrl = (id: string) => `/v1/files/${id}/content`;

export function serializeFile(f: FileRow) {
  return {
    id: f.id,
    name: f.name,
    size: f.size,
    sha256: f.sha256,
    mimeType: f.mimeType,
    createdAt: f.createdAt.toISOString(),
  };
}

export function serializeGeneratedFile(f: FileRow) {
  return {
    id: f.id,
    name: f.name,
    path: f.path ?? f.name,
    size: f.size,
    mimeType: f.mimeType,
    url: fileUrl(f.id),
    derivedFromId: f.derivedFromId,
  };
}

export function serializeExecution(e: ExecutionRow, files: FileRow[]) {
  const { result, failure } = readExecution(e);
  return {
    id: e.id,
    chatId: e.chatId,
    messageId: e.messageId,
    status: e.status,
    createdAt: e.createdAt.toISOString(),
    startedAt: e.startedAt?.toISOString() ?? null,
    finishedAt: e.finishedAt?.toISOString() ?? null,
    result,
    failure,
    files: files.map(serializeGeneratedFile),
    limits: { memoryMb: e.memoryMb },
  };
}
