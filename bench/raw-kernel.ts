// Kernels driven directly, with no codeinterp code in between: the floor the bench compares against.
import { KernelAPI, KernelConnection, ServerConnection } from "@jupyterlab/services";
import type { KernelMessage } from "@jupyterlab/services";
import type { KernelSession } from "@codeinterp/kernel";

/** A direct @jupyterlab/services KernelConnection, no codeinterp code in between. */
export async function rawConnection(baseUrl: string, token: string) {
  const base = baseUrl.replace(/\/+$/, "") + "/";
  const settings = ServerConnection.makeSettings({
    baseUrl: base,
    wsUrl: base.replace(/^http/, "ws"),
    token,
    appendToken: true,
  });
  const model = await KernelAPI.startNew({ name: "python3" }, settings);
  const conn = new KernelConnection({ model, serverSettings: settings, handleComms: false });
  await conn.info;
  return {
    async run(code: string): Promise<string> {
      let out = "";
      const future = conn.requestExecute({ code, store_history: false });
      future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
        if (msg.header.msg_type === "stream") out += (msg.content as { text: string }).text;
      };
      await future.done;
      return out;
    },
    async close() {
      await conn.shutdown().catch(() => undefined);
      conn.dispose();
    },
  };
}

export async function expectOk(s: KernelSession, code: string) {
  const o = await s.execute(code, { timeoutMs: 60_000 });
  if (o.status !== "ok") throw new Error(`raw kernel run ended ${o.status}`);
  return o;
}
