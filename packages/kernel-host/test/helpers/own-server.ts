import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKernelGateway, remoteKernelHost, silentLog } from "@codeinterp/kernel";
import type { KernelGateway } from "@codeinterp/kernel";
import { SANDBOX_KERNEL_NAME, startLocalJupyter } from "../../src";
import type { LocalJupyter, StartLocalJupyterOptions } from "../../src";

export interface OwnServer {
  /** The test's directory: the server's root is `root` in it, its state `state`. */
  tmp: string;
  server: LocalJupyter;
  /** Starts sandboxed kernels; a remote host (the test's own host, if it needs one, goes on a gateway of its own). */
  gateway: KernelGateway;
  stop(): Promise<void>;
}

/**
 * A local Jupyter server of a test file's own (as root, like the embedded one) in a fresh directory that
 * sandboxed kernels (unprivileged uids) can traverse. `extra` gets that directory first, for what the
 * server is to be started with (an egress policy, a proxy socket made there, limits).
 */
export async function startOwnServer(
  name: string,
  extra: (tmp: string) => Promise<Partial<StartLocalJupyterOptions>> | Partial<StartLocalJupyterOptions> = () => ({}),
): Promise<OwnServer> {
  const tmp = await mkdtemp(join(tmpdir(), `${name}-`));
  await chmod(tmp, 0o711);
  const server = await startLocalJupyter({
    rootDir: join(tmp, "root"),
    stateDir: join(tmp, "state"),
    port: 0,
    log: silentLog,
    ...(await extra(tmp)),
  });
  await chmod(join(tmp, "root"), 0o711);
  const gateway = createKernelGateway({
    baseUrl: server.url,
    token: server.token,
    log: silentLog,
    kernelName: SANDBOX_KERNEL_NAME,
    host: remoteKernelHost,
  });
  return {
    tmp,
    server,
    gateway,
    async stop() {
      await server.stop();
      await rm(tmp, { recursive: true, force: true });
    },
  };
}
