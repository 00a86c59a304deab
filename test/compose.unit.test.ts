import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadApiEnv } from "../apps/api/src/env";
import { loadWorkerEnv } from "../apps/worker/src/env";
import { JUPYTER_SERVER_CONFIG } from "../packages/kernel-host/src/jupyter-config";
import { IPYTHON_KERNEL_CONFIG } from "../packages/kernel-host/src/kernel-ipython";

// No Docker engine runs here: these tests keep docker-compose.yml honest about the code it runs.
const root = path.resolve(import.meta.dirname, "..");
const read = (p: string) => readFileSync(path.join(root, p), "utf8");

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: Array<string | { type?: string; source?: string; target: string }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  ports?: Array<string | number>;
  networks?: string[];
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { internal?: boolean } | null>;
}

const compose = parse(read("docker-compose.yml"), { merge: true }) as Compose;
const services = compose.services;

/** Compose interpolation of ${VAR}, ${VAR:-default} and ${VAR:?error}, with the shell environment empty. */
function interpolate(value: string, given: Record<string, string> = {}): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g,
    (_m, name: string, op: string | undefined, arg: string | undefined) => {
      if (given[name] !== undefined) return given[name];
      if (op?.endsWith("-")) return arg ?? "";
      if (op?.endsWith("?")) throw new Error(`\${${name}} is required: ${arg}`);
      return "";
    },
  );
}

function envOf(name: string): Record<string, string> {
  const env = services[name]?.environment ?? {};
  const entries = Array.isArray(env)
    ? env.map((e) => e.split(/=(.*)/s).slice(0, 2) as [string, string])
    : Object.entries(env).map(([k, v]) => [k, String(v ?? "")]);
  return Object.fromEntries(entries);
}

const commandOf = (name: string): string[] => {
  const c = services[name]?.command ?? [];
  return Array.isArray(c) ? c : c.split(/\s+/);
};

function mounts(name: string): Array<{ source: string; target: string }> {
  return (services[name]?.volumes ?? []).map((v) => {
    if (typeof v !== "string") return { source: v.source ?? "", target: v.target };
    const [source, target] = v.split(":");
    return { source: source!, target: target! };
  });
}

const appServices = ["migrate", "api", "worker"] as const;
// ADMIN_TOKEN has no default (${ADMIN_TOKEN:?...}): give it what an operator would.
const operatorEnv = {
  ADMIN_TOKEN: "an-operator-admin-token-0123456789",
  JUPYTER_TOKEN: "operator-jupyter-token",
  POSTGRES_PASSWORD: "operator-postgres-password",
  REDIS_PASSWORD: "operator-redis-password",
};
/** A service's environment as the operator's compose run gives it. */
const operatorEnvOf = (name: string) =>
  Object.fromEntries(Object.entries(envOf(name)).map(([k, v]) => [k, interpolate(v, operatorEnv)]));

describe("docker-compose.yml", () => {
  it("runs the whole stack", () => {
    for (const s of ["postgres", "redis", "jupyter", "migrate", "api", "worker"]) expect(services, s).toHaveProperty(s);
  });

  it("Redis persists with append-only files on a volume", () => {
    const cmd = commandOf("redis").join(" ");
    expect(cmd).toMatch(/--appendonly\s+yes/);
    expect(mounts("redis").map((m) => m.target)).toContain("/data");
  });

  it("the API and the workers start only after migrations completed", () => {
    for (const s of ["api", "worker"]) {
      const deps = services[s]!.depends_on;
      expect(deps && !Array.isArray(deps), s).toBe(true);
      expect((deps as Record<string, { condition?: string }>).migrate?.condition, s).toBe(
        "service_completed_successfully",
      );
    }
    const migrateDeps = services.migrate!.depends_on as Record<string, { condition?: string }>;
    expect(migrateDeps.postgres?.condition).toBe("service_healthy");
  });

  it("every service a URL names is defined, on the port that service listens on", () => {
    const checked: string[] = [];
    for (const name of Object.keys(services)) {
      const env = envOf(name);
      for (const key of ["DATABASE_URL", "REDIS_URL", "JUPYTER_URL"]) {
        if (!env[key]) continue;
        const url = new URL(interpolate(env[key]!, operatorEnv));
        expect(Object.keys(services), `${name} ${key}`).toContain(url.hostname);
        checked.push(`${name}.${key}`);
      }
    }
    for (const s of appServices) expect(checked).toContain(`${s}.DATABASE_URL`);
    expect(checked).toEqual(expect.arrayContaining(["api.REDIS_URL", "worker.REDIS_URL", "worker.JUPYTER_URL"]));

    const jupyterUrl = new URL(interpolate(envOf("worker").JUPYTER_URL!));
    expect(commandOf("jupyter")).toContain(`--ServerApp.port=${jupyterUrl.port}`);
    const worker = operatorEnvOf("worker");
    expect(new URL(worker.REDIS_URL!).port || "6379").toBe("6379");
    expect(new URL(worker.DATABASE_URL!).port).toBe("5432");
    // The database the apps use is the one Postgres creates.
    const db = new URL(worker.DATABASE_URL!);
    const pg = operatorEnvOf("postgres");
    expect(db.pathname.slice(1)).toBe(pg.POSTGRES_DB);
    expect(decodeURIComponent(db.username)).toBe(pg.POSTGRES_USER);
    expect(decodeURIComponent(db.password)).toBe(pg.POSTGRES_PASSWORD);
  });

  it("kernels share a network with the workers only: no route to Postgres, Redis, the API or the internet", () => {
    const nets = (name: string) => services[name]?.networks ?? ["default"];
    const internal = (net: string) => compose.networks?.[net]?.internal === true;
    for (const net of nets("jupyter")) {
      expect(internal(net), `${net} is internal`).toBe(true);
      const members = Object.keys(services).filter((s) => nets(s).includes(net));
      expect(members.sort(), `who shares ${net} with the kernels`).toEqual(["jupyter", "worker"]);
    }
    for (const s of ["postgres", "redis"]) {
      for (const net of nets(s)) expect(internal(net), `${s} on ${net}`).toBe(true);
      expect(
        nets(s).some((n) => nets("jupyter").includes(n)),
        `${s} shares a network with the kernels`,
      ).toBe(false);
    }
    // Only the API is published, and only it joins a non-internal network.
    const exposed = Object.keys(services).filter((s) => nets(s).some((n) => !internal(n)));
    expect(exposed).toEqual(["api"]);
  });

  it("Postgres and Redis demand passwords the operator sets, and the apps' URLs carry them", () => {
    expect(() => interpolate(envOf("postgres").POSTGRES_PASSWORD!)).toThrow(/POSTGRES_PASSWORD/);
    expect(() => interpolate(commandOf("redis").join(" "))).toThrow(/REDIS_PASSWORD/);
    expect(
      commandOf("redis")
        .map((a) => interpolate(a, operatorEnv))
        .join(" "),
    ).toContain(`--requirepass ${operatorEnv.REDIS_PASSWORD}`);
    for (const s of appServices) {
      const env = operatorEnvOf(s);
      expect(decodeURIComponent(new URL(env.REDIS_URL!).password), s).toBe(operatorEnv.REDIS_PASSWORD);
      expect(decodeURIComponent(new URL(env.DATABASE_URL!).password), s).toBe(operatorEnv.POSTGRES_PASSWORD);
    }
  });

  it("the API listens on the port it publishes", () => {
    const port = loadApiEnv(operatorEnvOf("api")).PORT;
    expect((services.api!.ports ?? []).map(String)).toContainEqual(expect.stringMatching(new RegExp(`:${port}$`)));
  });

  it("workers and kernels see the data volume at the same path, which is their DATA_DIR and the server's root_dir", () => {
    const worker = mounts("worker");
    const jupyter = mounts("jupyter");
    const dataDir = envOf("worker").DATA_DIR!;
    const workerData = worker.find((m) => m.target === dataDir);
    expect(workerData, `worker mounts ${dataDir}`).toBeDefined();
    expect(Object.keys(compose.volumes ?? {})).toContain(workerData!.source);
    expect(jupyter).toContainEqual({ source: workerData!.source, target: dataDir });
    expect(mounts("api")).toContainEqual({ source: workerData!.source, target: envOf("api").DATA_DIR });
    expect(commandOf("jupyter")).toContain(`--ServerApp.root_dir=${dataDir}`);
    // KERNEL_ROOT_DIR defaults to DATA_DIR, which is right only because root_dir is the same path.
    expect(loadWorkerEnv(operatorEnvOf("worker")).KERNEL_ROOT_DIR).toBe(path.resolve(dataDir));
  });

  it("only workers hold the gateway's address and token: the API cannot run code", () => {
    for (const s of ["api", "migrate"]) {
      expect(Object.keys(envOf(s)), s).not.toContain("JUPYTER_URL");
      expect(Object.keys(envOf(s)), s).not.toContain("JUPYTER_TOKEN");
    }
    expect(Object.keys((services.api!.depends_on ?? {}) as object)).not.toContain("jupyter");
  });

  it("the Jupyter server and the workers share one token", () => {
    for (const given of [{}, operatorEnv]) {
      const token = interpolate(envOf("worker").JUPYTER_TOKEN!, given);
      expect(token).not.toBe("");
      expect(commandOf("jupyter").map((a) => interpolate(a, given))).toContain(`--ServerApp.token=${token}`);
    }
  });

  it("sets only variables the apps read, with values their env schemas accept", () => {
    // zod strips unknown keys: a misspelt or removed variable is missing from the parsed env.
    const check = (service: string, load: (src: Record<string, string>) => object) => {
      const env = operatorEnvOf(service);
      const parsed = load(env);
      const unknown = Object.keys(env).filter((k) => !(k in parsed));
      expect(unknown, `${service} sets variables its env.ts does not know`).toEqual([]);
    };
    check("api", loadApiEnv);
    check("worker", loadWorkerEnv);
    // The migration step reads DATABASE_URL only (packages/db/src/migrate-cli.ts).
    check("migrate", (src) => ({ ...loadApiEnv(src), ...loadWorkerEnv(src) }));
    expect(read("packages/db/src/migrate-cli.ts")).toContain("DATABASE_URL");
  });

  it("builds from Dockerfiles that exist and runs entry points that exist", () => {
    let built = 0;
    for (const [name, s] of Object.entries(services)) {
      if (!s.build) continue;
      const ctx = typeof s.build === "string" ? s.build : (s.build.context ?? ".");
      const dockerfile = typeof s.build === "string" ? "Dockerfile" : (s.build.dockerfile ?? "Dockerfile");
      expect(existsSync(path.join(root, ctx, dockerfile)), `${name}: ${path.join(ctx, dockerfile)}`).toBe(true);
      built++;
    }
    expect(built).toBeGreaterThanOrEqual(4);
    for (const s of appServices) {
      const entry = commandOf(s).find((a) => a.endsWith(".ts"));
      expect(entry, s).toBeDefined();
      expect(existsSync(path.join(root, entry!)), `${s}: ${entry}`).toBe(true);
    }
  });

  const dockerfile = read("Dockerfile");
  const installAt = dockerfile.search(/RUN npm (ci|install)\b/);
  const beforeInstall = dockerfile.slice(0, installAt);
  const lock = JSON.parse(read("package-lock.json")) as { packages: Record<string, unknown> };
  const workspaces = Object.keys(lock.packages).filter((p) => /^(apps|packages)\/[^/]+$/.test(p));

  it("the app image copies every workspace's package.json before installing (a lockfile mismatch fails)", () => {
    expect(installAt).toBeGreaterThan(0);
    expect(workspaces.length).toBeGreaterThan(3);
    const copiesAll = /^COPY \. \.?\/?\s*$/m.test(beforeInstall);
    const missing = copiesAll ? [] : workspaces.filter((ws) => !beforeInstall.includes(`COPY ${ws}/package.json`));
    expect(missing, "workspaces the Dockerfile does not copy before npm ci").toEqual([]);
  });

  it("the app image installs the tools its commands run (tsx, prisma)", () => {
    // `node --import tsx`: with NODE_ENV=production set before `npm ci`, devDependencies are not installed.
    const usesTsx = appServices.some((s) => commandOf(s).includes("tsx"));
    const pkg = JSON.parse(read("package.json")) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    // Only workspaces whose package.json the image has at `npm ci` contribute dependencies.
    const copiesAll = /^COPY \. \.?\/?\s*$/m.test(beforeInstall);
    const copied = workspaces.filter(
      (ws) =>
        (copiesAll || beforeInstall.includes(`COPY ${ws}/package.json`)) &&
        existsSync(path.join(root, ws, "package.json")),
    );
    const workspaceDeps = copied.flatMap((ws) =>
      Object.keys(
        (JSON.parse(read(`${ws}/package.json`)) as { dependencies?: Record<string, string> }).dependencies ?? {},
      ),
    );
    const omitsDev =
      /ENV\s+NODE_ENV=production/.test(beforeInstall) && !/npm (ci|install)[^\n]*--include=dev/.test(dockerfile);
    const installed = [...Object.keys(pkg.dependencies ?? {}), ...workspaceDeps];
    if (usesTsx && omitsDev) expect(installed, "tsx is installed in the image").toContain("tsx");
    if (/npx prisma/.test(dockerfile) && omitsDev)
      expect(installed, "prisma (for `npx prisma generate`) is installed in the image").toContain("prisma");
  });
});

describe("docker/jupyter_server_config.py", () => {
  it("is the config `npm start` uses (packages/kernel-host)", () => {
    expect(read("docker/jupyter_server_config.py")).toBe(JUPYTER_SERVER_CONFIG);
  });
});

describe("docker/ipython_kernel_config.py", () => {
  it("is the kernels' IPython config `npm start` uses, installed where every kernel of the image reads it", () => {
    expect(read("docker/ipython_kernel_config.py")).toBe(IPYTHON_KERNEL_CONFIG);
    expect(read("docker/jupyter.Dockerfile")).toMatch(
      /^COPY docker\/ipython_kernel_config\.py \/etc\/ipython\/ipython_kernel_config\.py$/m,
    );
  });
});
