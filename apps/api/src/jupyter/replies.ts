import { PROTOCOL_VERSION } from "./protocol";

/** What kernel_info_reply says: a Python kernel (the workers run ipykernel) reached through codeinterp. */
export function kernelInfo(): Record<string, unknown> {
  return {
    status: "ok",
    protocol_version: PROTOCOL_VERSION,
    implementation: "codeinterp",
    implementation_version: "0.1.0",
    language_info: {
      name: "python",
      version: "3",
      mimetype: "text/x-python",
      file_extension: ".py",
      pygments_lexer: "ipython3",
      codemirror_mode: { name: "ipython", version: 3 },
      nbconvert_exporter: "python",
    },
    banner: "codeinterp: each execution runs through codeinterp's queue in a contained kernel; files live in /mnt/data",
    help_links: [],
    debugger: false,
  };
}

/**
 * Requests this surface does not serve get a well-formed answer rather than silence: empty results where
 * the protocol has a natural empty answer, an error reply otherwise.
 */
export function unservedReply(
  requestType: string,
  content: Record<string, unknown>,
): { type: string; content: Record<string, unknown> } {
  const type = requestType.replace(/_request$/, "_reply");
  const cursor = typeof content.cursor_pos === "number" ? content.cursor_pos : 0;
  switch (requestType) {
    case "complete_request":
      return { type, content: { status: "ok", matches: [], cursor_start: cursor, cursor_end: cursor, metadata: {} } };
    case "inspect_request":
      return { type, content: { status: "ok", found: false, data: {}, metadata: {} } };
    case "history_request":
      return { type, content: { status: "ok", history: [] } };
    case "is_complete_request":
      return { type, content: { status: "unknown" } };
    case "comm_info_request":
      return { type, content: { status: "ok", comms: {} } };
    default:
      return {
        type,
        content: {
          status: "error",
          ename: "NotImplementedError",
          evalue: `codeinterp does not serve ${requestType.slice(0, 64)}`,
          traceback: [],
        },
      };
  }
}
