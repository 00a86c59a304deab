import { randomUUID } from "node:crypto";
import { WebSocket } from "ws";
import { now } from "./stats";

/**
 * One code run the way Open WebUI's Jupyter engine does it (open-webui utils/code_interpreter.py): POST
 * api/kernels?token=, the kernel websocket, one execute_request, messages until status idle, DELETE. The same
 * client against a stock Jupyter server (a fresh kernel every run) and against codeinterp's /jupyter.
 */
export async function openWebUiRoundTrip(
  baseUrl: string,
  token: string,
  code: string,
): Promise<{ ms: number; untilIdleMs: number; stdout: string }> {
  const base = baseUrl.replace(/\/+$/, "");
  const q = `?token=${encodeURIComponent(token)}`;
  const t0 = now();
  const started = await fetch(`${base}/api/kernels${q}`, { method: "POST" });
  if (!started.ok) throw new Error(`POST api/kernels: ${started.status}`);
  const { id } = (await started.json()) as { id: string };
  let stdout = "";
  const execute = async (): Promise<number> => {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}/api/kernels/${id}/channels${q}`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const msgId = randomUUID();
    const idle = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no idle within 60 s")), 60_000);
      ws.on("message", (data) => {
        const m = JSON.parse(String(data)) as {
          msg_type?: string;
          header: { msg_type: string };
          parent_header?: { msg_id?: string };
          content: Record<string, unknown>;
        };
        if (m.parent_header?.msg_id !== msgId) return;
        const type = m.msg_type ?? m.header.msg_type;
        if (type === "stream" && m.content.name === "stdout") stdout += String(m.content.text);
        if (type === "status" && m.content.execution_state === "idle") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    ws.send(
      JSON.stringify({
        header: {
          msg_id: msgId,
          msg_type: "execute_request",
          username: "user",
          session: randomUUID(),
          date: "",
          version: "5.3",
        },
        parent_header: {},
        metadata: {},
        content: {
          code,
          silent: false,
          store_history: true,
          user_expressions: {},
          allow_stdin: false,
          stop_on_error: true,
        },
        channel: "shell",
      }),
    );
    await idle;
    ws.close();
    return now() - t0;
  };
  const untilIdleMs = await execute().finally(() => fetch(`${base}/api/kernels/${id}${q}`, { method: "DELETE" }));
  return { ms: now() - t0, untilIdleMs, stdout };
}
