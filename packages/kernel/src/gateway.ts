import { KernelAPI, KernelConnection, ServerConnection } from "@jupyterlab/services";
import { GatewayUnavailableError, InvalidKernelPathError, KernelDiedError, KernelNotFoundError } from "./errors";
import type { KernelHost } from "./host";
import { KERNEL_SETUP_CODE } from "./kernel-setup";
import type { GatewayMonitor } from "./liveness";
import type { Log } from "./log";
import { executeWatched } from "./presence";
import { KernelSession, shutdownKernelById } from "./session";
import { isRefused, makeServerSettings, withGatewayRetry } from "./settings";

export type KernelGatewayOptions = {
  baseUrl: string;
  token: string;
  log: Log;
  /** Deadline for each HTTP request to the gateway. Default 30 s (a kernel restart can take a few). */
  requestTimeoutMs?: number;
  /** How long a new kernel may take to answer its first request. Default 60 s. */
  kernelStartTimeoutMs?: number;
  /** Kernelspec to start, e.g. "codeinterp-sandbox" (@codeinterp/kernel-host's sandbox.ts). Default "python3". */
  kernelName?: string;
  /**
   * The gateway's liveness monitor (watchGateway): while it declares the gateway unresponsive, every
   * request, websocket wait and run ends at once with GatewayUnavailableError.
   */
  monitor?: Pick<GatewayMonitor, "signal">;
  /**
   * The machine the kernels run on (host.ts): each session's memory limit, out-of-memory kills and CPU
   * weight go through it. remoteKernelHost where that machine is not this one or is unknown.
   */
  host: KernelHost;
};

export type KernelInfo = {
  id: string;
  name: string;
  executionState: string | null;
  connections: number | null;
  lastActivity: string | null;
};

export type KernelGateway = {
  readonly baseUrl: string;
  /** Throws GatewayUnavailableError when the server cannot be reached (after a few retries) or rejects the token. */
  ping(): Promise<void>;
  /** `path` (relative to the server's root_dir, must exist) becomes the kernel's working directory. */
  startKernel(opts?: { path?: string }): Promise<KernelSession>;
  /** Attaches to a running kernel, e.g. one another worker started. Throws KernelNotFoundError. */
  connectKernel(kernelId: string): Promise<KernelSession>;
  listKernels(): Promise<KernelInfo[]>;
  /** Whether the server still has this kernel (deleted or lost in a server restart: false). */
  hasKernel(kernelId: string): Promise<boolean>;
  /** Names of the kernelspecs the server offers, with their `metadata`. */
  kernelSpecs(): Promise<Record<string, { metadata: Record<string, unknown> }>>;
  /** Stops a kernel by id; an already-gone kernel is not an error. */
  shutdownKernel(kernelId: string): Promise<void>;
};

/** Rejects absolute paths and any `..` segment: the server would happily start a kernel outside root_dir. */
export function normalizeKernelPath(path: string | undefined): string {
  if (path === undefined || path === "" || path === ".") return "";
  if (path.includes("\0") || /^([/\\]|[A-Za-z]:)/.test(path)) throw new InvalidKernelPathError(path);
  const parts = path.split(/[/\\]+/).filter((p) => p !== "" && p !== ".");
  if (parts.some((p) => p === "..")) throw new InvalidKernelPathError(path);
  return parts.join("/");
}

const anyTime = () => true;

export function createKernelGateway(opts: KernelGatewayOptions): KernelGateway {
  const { log } = opts;
  const monitor = opts.monitor;
  const down = monitor ? () => monitor.signal : undefined;
  const settings = makeServerSettings(opts.baseUrl, opts.token, opts.requestTimeoutMs ?? 30_000, down);
  const startTimeoutMs = opts.kernelStartTimeoutMs ?? 60_000;
  const idempotent = { attempts: 3, retryable: anyTime };

  const request = async (path: string): Promise<Response> =>
    ServerConnection.makeRequest(settings.baseUrl + path, {}, settings);

  const kernelName = opts.kernelName ?? "python3";

  const hasKernel = async (kernelId: string): Promise<boolean> => {
    const model = await withGatewayRetry(
      "kernel lookup",
      () => KernelAPI.getKernelModel(kernelId, settings),
      idempotent,
    );
    return model !== undefined && model !== null && (model as { execution_state?: string }).execution_state !== "dead";
  };

  const open = async (model: KernelAPI.IModel): Promise<KernelSession> => {
    const connection = new KernelConnection({ model, serverSettings: settings, handleComms: false });
    const session = new KernelSession(connection, settings, log, opts.host, down);
    try {
      await session.ready(startTimeoutMs);
    } catch (err) {
      connection.dispose();
      throw err;
    }
    return session;
  };

  return {
    baseUrl: settings.baseUrl,

    async ping() {
      const res = await withGatewayRetry("ping", () => request("api/status"), idempotent);
      if (!res.ok) throw new GatewayUnavailableError(`kernel gateway answered HTTP ${res.status} to /api/status`);
    },

    async startKernel(startOpts = {}) {
      const path = normalizeKernelPath(startOpts.path);
      if (path) {
        // A missing folder would silently give the kernel a parent folder as its cwd.
        const res = await withGatewayRetry(
          "path check",
          () => request(`api/contents/${encodeURI(path)}?content=0`),
          idempotent,
        );
        const body = res.ok ? ((await res.json()) as { type?: string }) : null;
        if (body?.type !== "directory")
          throw new InvalidKernelPathError(`${path} (no such directory under the server root)`);
      }
      const started = Date.now();
      // Retrying a start is only safe when the request never reached the server.
      const model = await withGatewayRetry(
        "kernel start",
        () => KernelAPI.startNew({ name: kernelName, path } as KernelAPI.IKernelOptions, settings),
        { attempts: 3, retryable: isRefused },
      ).catch((err: unknown) => {
        // jupyter_server answers 500 ("Unhandled error") when the kernel process fails to come up (its ports
        // taken, the server mid-restart): the kernel died while starting, which callers retry once.
        if (err instanceof ServerConnection.ResponseError && err.response.status === 500)
          throw new KernelDiedError(`the gateway could not start a kernel: ${err.message}`);
        throw err;
      });
      let session: KernelSession | undefined;
      try {
        session = await open(model);
        // Watched as user code is: a server restarted just after the kernel answered takes the kernel with it,
        // and the setup cell would wait out the whole start timeout (a message's first execution did, 60 s).
        const { outcome: setup, vanished } = await executeWatched(session, KERNEL_SETUP_CODE, {
          timeoutMs: startTimeoutMs,
          exists: () => hasKernel(model.id),
          onLookupError: (err) =>
            log.debug(
              { kernelId: model.id, err: err instanceof Error ? err.message : String(err) },
              "kernel lookup failed during setup",
            ),
        });
        if (vanished) throw new KernelDiedError(`kernel ${model.id} vanished from the server during setup`);
        if (setup.status !== "ok") throw new KernelDiedError(`kernel ${model.id} setup failed: ${setup.status}`);
        log.debug({ kernelId: model.id, ms: Date.now() - started }, "kernel started");
        return session;
      } catch (err) {
        // Its websocket would go on reconnecting to a kernel that is gone.
        session?.dispose();
        // The start's error is rethrown; a kernel that cannot be shut down is swept by its record.
        await KernelAPI.shutdownKernel(model.id, settings).catch(() => undefined);
        throw err;
      }
    },

    async connectKernel(kernelId) {
      const model = await withGatewayRetry(
        "kernel lookup",
        () => KernelAPI.getKernelModel(kernelId, settings),
        idempotent,
      );
      if (!model) throw new KernelNotFoundError(kernelId);
      return open(model);
    },

    hasKernel,
    async kernelSpecs() {
      const res = await withGatewayRetry("kernelspecs", () => request("api/kernelspecs"), idempotent);
      if (!res.ok) throw new GatewayUnavailableError(`kernel gateway answered HTTP ${res.status} to /api/kernelspecs`);
      const body = (await res.json()) as {
        kernelspecs?: Record<string, { spec?: { metadata?: Record<string, unknown> } }>;
      };
      return Object.fromEntries(
        Object.entries(body.kernelspecs ?? {}).map(([name, k]) => [name, { metadata: k.spec?.metadata ?? {} }]),
      );
    },
    async listKernels() {
      const models = await withGatewayRetry("kernel list", () => KernelAPI.listRunning(settings), idempotent);
      return models.map((m) => ({
        id: m.id,
        name: m.name,
        executionState: m.execution_state ?? null,
        connections: m.connections ?? null,
        lastActivity: m.last_activity ?? null,
      }));
    },

    async shutdownKernel(kernelId) {
      await withGatewayRetry("kernel shutdown", () => shutdownKernelById(kernelId, settings), idempotent);
    },
  };
}
