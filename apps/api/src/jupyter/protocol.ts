import { randomUUID } from "node:crypto";
import { z } from "zod";

/** The subprotocol `@jupyterlab/services` 7 offers first: binary frames with an offset table. */
export const V1_PROTOCOL = "v1.kernel.websocket.jupyter.org";
export const PROTOCOL_VERSION = "5.3";

export type Channel = "shell" | "control" | "iopub" | "stdin";

const header = z
  .object({
    msg_id: z.string().min(1).max(256),
    msg_type: z.string().min(1).max(128),
    session: z.string().max(256).optional(),
    username: z.string().max(256).optional(),
    date: z.string().max(64).optional(),
    version: z.string().max(16).optional(),
  })
  .loose();
export type Header = z.infer<typeof header>;

const incoming = z.object({
  channel: z.enum(["shell", "control", "iopub", "stdin"]).optional(),
  header,
  parent_header: z.record(z.string(), z.unknown()).nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
  content: z.record(z.string(), z.unknown()).nullish(),
});

export interface ClientMessage {
  channel: Channel;
  header: Header;
  content: Record<string, unknown>;
}

/** A frame a client sent that is not a Jupyter message: the connection is closed with this reason. */
export class MalformedFrameError extends Error {
  override name = "MalformedFrameError";
}

/** Parses one frame: JSON text (no subprotocol) or the v1 binary layout. */
export function parseFrame(data: Buffer, binary: boolean, protocol: string): ClientMessage {
  let raw: unknown;
  try {
    raw = protocol === V1_PROTOCOL && binary ? parseV1(data) : JSON.parse(data.toString("utf8"));
  } catch (err) {
    if (err instanceof MalformedFrameError) throw err;
    throw new MalformedFrameError("frame is not a JSON Jupyter message");
  }
  const parsed = incoming.safeParse(raw);
  if (!parsed.success)
    throw new MalformedFrameError("frame is not a Jupyter message (header.msg_id and header.msg_type are required)");
  const m = parsed.data;
  return { channel: m.channel ?? "shell", header: m.header, content: m.content ?? {} };
}

/**
 * v1.kernel.websocket.jupyter.org: u64 LE count n, n u64 LE offsets, then channel, header, parent_header,
 * metadata, content and buffers at those offsets (the last offset is the end).
 */
function parseV1(buf: Buffer): Record<string, unknown> {
  if (buf.length < 8) throw new MalformedFrameError("binary frame too short");
  const n = Number(buf.readBigUInt64LE(0));
  if (n < 6 || n > 64 || buf.length < 8 * (n + 1)) throw new MalformedFrameError("binary frame has a bad offset table");
  const offsets: number[] = [];
  for (let i = 0; i < n; i++) offsets.push(Number(buf.readBigUInt64LE(8 * (i + 1))));
  for (let i = 0; i < n; i++) {
    const o = offsets[i]!;
    if (o < 8 * (n + 1) || o > buf.length || (i > 0 && o < offsets[i - 1]!))
      throw new MalformedFrameError("binary frame has a bad offset table");
  }
  const part = (i: number) => buf.subarray(offsets[i], offsets[i + 1]).toString("utf8");
  return {
    channel: part(0),
    header: JSON.parse(part(1)) as unknown,
    parent_header: JSON.parse(part(2)) as unknown,
    metadata: JSON.parse(part(3)) as unknown,
    content: JSON.parse(part(4)) as unknown,
  };
}

export interface ServerMessage {
  channel: Channel;
  header: Required<Pick<Header, "msg_id" | "msg_type" | "session" | "username" | "date" | "version">>;
  parent_header: Header | Record<string, never>;
  metadata: Record<string, unknown>;
  content: Record<string, unknown>;
}

/** A message from "the kernel", answering (or caused by) the client's message with `parent` as header. */
export function reply(
  session: string,
  channel: Channel,
  msgType: string,
  parent: Header | null,
  content: Record<string, unknown>,
): ServerMessage {
  return {
    channel,
    header: {
      msg_id: randomUUID(),
      msg_type: msgType,
      session,
      username: "codeinterp",
      date: new Date().toISOString(),
      version: PROTOCOL_VERSION,
    },
    parent_header: parent ?? {},
    metadata: {},
    content,
  };
}

/** JSON text as Jupyter Server sends it (msg_id and msg_type also at the top: Open WebUI reads them there). */
export function serialize(msg: ServerMessage, protocol: string): string | Buffer {
  if (protocol !== V1_PROTOCOL) {
    return JSON.stringify({ ...msg, msg_id: msg.header.msg_id, msg_type: msg.header.msg_type, buffers: [] });
  }
  const parts = [
    msg.channel,
    JSON.stringify(msg.header),
    JSON.stringify(msg.parent_header),
    JSON.stringify(msg.metadata),
    JSON.stringify(msg.content),
  ].map((s) => Buffer.from(s, "utf8"));
  const n = parts.length + 1;
  const table = Buffer.alloc(8 * (n + 1));
  table.writeBigUInt64LE(BigInt(n), 0);
  let offset = table.length;
  for (let i = 0; i <= parts.length; i++) {
    table.writeBigUInt64LE(BigInt(offset), 8 * (i + 1));
    offset += parts[i]?.length ?? 0;
  }
  return Buffer.concat([table, ...parts]);
}
