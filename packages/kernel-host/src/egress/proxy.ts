import { createHmac, timingSafeEqual } from "node:crypto";
import { lookup } from "node:dns/promises";
import type { LookupAddress, LookupOptions } from "node:dns";
import { chmod, rm } from "node:fs/promises";
import { RequestError, Server } from "proxy-chain";
import type { PrepareRequestFunctionOpts, PrepareRequestFunctionResult } from "proxy-chain";
import type { Log } from "@codeinterp/kernel";
import type { EgressPolicy } from "./allowlist";

export type EgressProxyOptions = {
  /** Unix socket the proxy listens on; launchers bind it into each kernel's sandbox. */
  socketPath: string;
  policy: EgressPolicy;
  /** Signs each kernel's proxy credentials, so one kernel cannot speak (and be logged) as another. */
  secret: string;
  log: Log;
  resolveTimeoutMs?: number;
};

export type EgressProxy = {
  socketPath: string;
  close(): Promise<void>;
};

/** The password a kernel presents as `http://<kernelId>:<password>@127.0.0.1:3128`; launchers compute the same. */
export function egressPassword(secret: string, kernelId: string): string {
  return createHmac("sha256", secret).update(`egress:${kernelId}`).digest("hex").slice(0, 32);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

type PinnedLookup = (
  hostname: string,
  options: LookupOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
) => void;

/** Connects to the address we vetted, never to a second resolution of the name (no DNS rebinding). */
function pinnedLookup(address: LookupAddress): PinnedLookup {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [address]);
    else callback(null, address.address, address.family);
  };
}

/** proxy-chain drops connections without a remote address (a TCP-only workaround); ours come over a unix socket. */
class UnixSocketProxyServer extends Server {
  override onConnection(socket: Parameters<Server["onConnection"]>[0]): void {
    this.registerConnection(socket);
    socket.on("error", () => undefined); // the handler attached per request reports it
  }
}

/**
 * The allowlisting HTTP(S) forward proxy kernels reach through a unix socket bound into their sandbox (their
 * only way out: they have no network of their own). Built on proxy-chain, which tunnels CONNECT and forwards
 * plain HTTP; the policy here decides, after resolving names itself, and pins the vetted address.
 */
export async function startEgressProxy(opts: EgressProxyOptions): Promise<EgressProxy> {
  const { policy, secret, log } = opts;
  const resolveTimeoutMs = opts.resolveTimeoutMs ?? 5_000;

  const prepare = async (req: PrepareRequestFunctionOpts): Promise<PrepareRequestFunctionResult> => {
    const kernel = req.username;
    const method = req.isHttp ? "HTTP" : "CONNECT";
    if (!kernel || !sameSecret(req.password, egressPassword(secret, kernel))) {
      log.warn({ method, host: req.hostname, port: req.port }, "egress refused: no valid kernel credentials");
      throw new RequestError("egress proxy: kernel credentials required", 407);
    }
    let addresses: LookupAddress[];
    try {
      addresses = await lookup(req.hostname, { all: true, verbatim: true });
      if (addresses.length === 0) throw new Error("no addresses");
    } catch {
      log.info(
        { kernel, method, host: req.hostname, port: req.port, allowed: false },
        "egress refused: name does not resolve",
      );
      throw new RequestError(`egress proxy: cannot resolve ${req.hostname}`, 502);
    }
    let reason = "";
    for (const address of addresses.slice(0, 8)) {
      const decision = policy.decide(req.hostname, address.address, req.port);
      if (decision.allowed) {
        log.info(
          { kernel, method, host: req.hostname, port: req.port, address: address.address, allowed: true },
          "egress allowed",
        );
        return { dnsLookup: pinnedLookup(address) as unknown as PrepareRequestFunctionResult["dnsLookup"] };
      }
      reason ||= decision.reason;
    }
    log.info({ kernel, method, host: req.hostname, port: req.port, allowed: false, reason }, "egress refused");
    throw new RequestError(`egress proxy: ${req.hostname}:${req.port} is not allowed (${reason})`, 403);
  };

  const server = new UnixSocketProxyServer({
    port: 0,
    verbose: false,
    prepareRequestFunction: (req) => withTimeout(prepare(req), resolveTimeoutMs),
  });
  // Failed upstream connections are the kernel's business (it sees the 502); keep them out of our error log.
  server.on("requestFailed", ({ error }: { error: Error }) =>
    log.debug({ err: error.message }, "egress request failed"),
  );
  await rm(opts.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.server.listen(opts.socketPath, () => {
      server.server.off("error", reject);
      resolve();
    });
  });
  // Kernels run as per-workspace uids: any of them may connect; what they may reach is the policy's call.
  await chmod(opts.socketPath, 0o666);
  return {
    socketPath: opts.socketPath,
    async close() {
      await server.close(true);
      await rm(opts.socketPath, { force: true });
    },
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RequestError("egress proxy: name resolution timed out", 504)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
