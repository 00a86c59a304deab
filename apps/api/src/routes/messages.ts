import { Router } from "express";
import { listChatFiles, listMessageFiles } from "@codeinterp/db";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { buildMessageContext } from "../files/context";
import { ChatParams, MessageParams } from "../schemas-files";
import { serializeGeneratedFile } from "../serialize";
import { parseInput } from "../validate";

/**
 * Generated files by message and by chat, and the prompt context of a message. Everything is scoped to the
 * caller: someone else's message or chat reads as an empty one, so nothing tells whether it exists.
 */
export function messagesRouter(deps: ApiDeps): Router {
  const router = Router();

  router.get("/messages/:messageId/files", async (req, res) => {
    const userId = userOf(res);
    const { messageId } = parseInput(MessageParams, req.params, "params");
    const files = await listMessageFiles(deps.db, userId, messageId);
    res.json({ messageId, files: files.map(serializeGeneratedFile) });
  });

  router.get("/chats/:chatId/files", async (req, res) => {
    const userId = userOf(res);
    const { chatId } = parseInput(ChatParams, req.params, "params");
    const byMessage = await listChatFiles(deps.db, userId, chatId);
    let totalFiles = 0;
    const messages: Record<string, ReturnType<typeof serializeGeneratedFile>[]> = Object.create(null) as Record<
      string,
      never
    >;
    for (const [messageId, files] of byMessage) {
      totalFiles += files.length;
      messages[messageId] = files.map(serializeGeneratedFile);
    }
    res.json({ chatId, totalFiles, messages });
  });

  router.get("/messages/:messageId/context", async (req, res) => {
    const userId = userOf(res);
    const { messageId } = parseInput(MessageParams, req.params, "params");
    res.json(await buildMessageContext(deps, userId, messageId));
  });

  return router;
}
