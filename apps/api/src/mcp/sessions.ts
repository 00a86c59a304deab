import { randomBytes } from "node:crypto";
import { latestMessageExecution } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";

/**
 * An MCP session is one of the caller's message workspaces (its /mnt/data and its kernel). Neither chat
 * product tells an MCP server which chat it serves, so the server mints the handle: 128 random bits, kept
 * nowhere but in the message id of the caller's own executions. Any API instance resolves it from Postgres,
 * and it resolves only for its owner: another user's session_id finds none of their executions.
 */
export const MCP_CHAT_ID = "mcp";
const MESSAGE_PREFIX = "mcp-session:";
const SESSION_ID = /^[A-Za-z0-9_-]{22}$/;

export interface McpSession {
  id: string;
  chatId: string;
  messageId: string;
  isNew: boolean;
}

/** The session_id names no session of this caller (unknown, expired from nothing, or another user's). */
export class UnknownSessionError extends Error {
  override name = "UnknownSessionError";
  constructor() {
    super(
      "Unknown session_id: no session of yours has this id. Omit session_id to start a new session, or pass one a previous tool call returned.",
    );
  }
}

export function newSession(): McpSession {
  const id = randomBytes(16).toString("base64url");
  return { id, chatId: MCP_CHAT_ID, messageId: MESSAGE_PREFIX + id, isNew: true };
}

/** The caller's session by id; a new one when `id` is absent. */
export async function resolveSession(db: Db, userId: string, id: string | undefined): Promise<McpSession> {
  if (id === undefined) return newSession();
  if (!SESSION_ID.test(id)) throw new UnknownSessionError();
  const messageId = MESSAGE_PREFIX + id;
  if (!(await latestMessageExecution(db, userId, messageId))) throw new UnknownSessionError();
  return { id, chatId: MCP_CHAT_ID, messageId, isNew: false };
}
