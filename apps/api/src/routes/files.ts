import { Router } from "express";
import type { ApiDeps } from "../deps";

/** Uploads, metadata, downloads and deletion of a user's files. */
export function filesRouter(_deps: ApiDeps): Router {
  const router = Router();
  return router;
}
