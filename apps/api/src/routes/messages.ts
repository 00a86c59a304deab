import { Router } from "express";
import type { ApiDeps } from "../deps";

/** Generated files by message and by chat, and the prompt context of a message. */
export function messagesRouter(_deps: ApiDeps): Router {
  const router = Router();
  return router;
}
