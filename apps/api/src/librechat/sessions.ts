import type { LibreChatSessionRow } from "@codeinterp/db";
import type { Principal } from "./auth";

/** How a session records its owner for operators: `user:<id>`, `agent:<id>`, `skill:<id>`. */
export const entityLabel = (p: Pick<Principal, "kind" | "librechatId">) => `${p.kind}:${p.librechatId}`;

/** An agent's or skill's files: LibreChat hands them to every user of that agent, so any user may attach them. */
export const isSharedEntity = (s: Pick<LibreChatSessionRow, "librechatUser">) =>
  /^(agent|skill):/.test(s.librechatUser);
