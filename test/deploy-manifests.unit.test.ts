import { existsSync, readFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { QueueKeys } from "bullmq";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadApiEnv } from "../apps/api/src/env";
import { healthRouter } from "../apps/api/src/routes/health";
import { loadWorkerEnv } from "../apps/worker/src/env";
import { kernelEgressEnvShape, kernelLimitsEnvShape, loadKernelLimits } from "../packages/config/src/index";
import { APT_PACKAGES } from "@codeinterp/kernel-host";
import { queueNames } from "../packages/queue/src/catalog";
import type { Container, K8sObject, PodSpec, Workload } from "./helpers/k8s";
import { byKind, configMap, containerEnv, mebibytes, render, root, schemaProblem, workload } from "./helpers/k8s";

// No cluster here: this renders deploy/kustomize with kubectl's built-in kustomize, checks every object
// against the Kubernetes and KEDA schemas, and checks what the deployment must get right against the code
// it runs. Each check returns its problems, and the last block breaks a rendered copy on purpose to show
// that each check notices.
const read = (p: string) => readFileSync(path.join(root, p), "utf8");
const SECRET_NAME = "codeinterp-secrets";
const isSecretName = (n: string) =>
  /^(DATABASE_URL|REDIS_URL|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)$/.test(n) || /TOKEN|SECRET|PASSWORD/.test(n);
/** What an operator's Secret would hold, so the env schemas can parse a container's whole environment. */
const sampleSecret = (name: string) =>
  ({
    DATABASE_URL: "postgresql://codeinterp:pw@postgres.example:5432/codeinterp",
    REDIS_URL: "redis://:pw@redis.example:6379",
    ADMIN_TOKEN: "an-operator-admin-token-0123456789",
    SIGNED_LINK_SECRET: "a-signing-secret-of-at-least-32-characters",
  })[name] ?? "secret-value";

const containersOf = (spec: PodSpec): Container[] => [...(spec.initContainers ?? []), ...spec.containers];
const allPods = (objects: K8sObject[]) => byKind<Workload>(objects, "Deployment").map((d) => d.spec.template);
const api = (objects: K8sObject[]) => workload(objects, "api");
const cell = (objects: K8sObject[]) => workload(objects, "cell");
const mainContainer = (w: Workload) => w.spec.template.spec.containers[0]!;
const apiEnvOf = (o: K8sObject[]) => containerEnv(o, mainContainer(api(o)), sampleSecret);
const cellEnvOf = (o: K8sObject[]) => containerEnv(o, mainContainer(cell(o)), sampleSecret);
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
/** Repository name of an image reference: registry.example.com/codeinterp:0.1.0 → codeinterp. */
const repository = (image: string) =>
  image
    .replace(/[:@][^/]*$/, "")
    .split("/")
    .pop() ?? "";

/** Paths the API's health router serves with a 200, asked of the real router over HTTP. */
let servedHealth: (p: string) => Promise<number>;
let closeHealth: () => void;
beforeAll(async () => {
  const app = express();
  app.use(healthRouter({ readiness: () => Promise.reject(new Error("not asked")) }));
  const server = app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const { port } = server.address() as AddressInfo;
  servedHealth = async (p) => (await fetch(`http://127.0.0.1:${port}${p}`)).status;
  closeHealth = () => server.close();
});
afterAll(() => closeHealth());

type Check = (objects: K8sObject[]) => string[] | Promise<string[]>;

const checks = {
  schemas: (o) => o.map(schemaProblem).filter(Boolean),

  secrets: (o) => {
    const problems = byKind(o, "Secret").map(
      (s) => `Secret ${s.metadata.name} is rendered: secrets are created out of band`,
    );
    for (const pod of allPods(o))
      for (const c of containersOf(pod.spec)) {
        for (const e of c.env ?? []) {
          if (!isSecretName(e.name)) continue;
          const ref = e.valueFrom?.secretKeyRef;
          if (!ref) problems.push(`${c.name}: ${e.name} is not read from a Secret`);
          else if (ref.name !== SECRET_NAME) problems.push(`${c.name}: ${e.name} from Secret ${ref.name}`);
        }
        if (c.envFrom?.some((f) => f.secretRef)) problems.push(`${c.name}: envFrom a whole Secret`);
      }
    for (const cm of byKind<K8sObject & { data?: Record<string, string> }>(o, "ConfigMap"))
      for (const [k, v] of Object.entries(cm.data ?? {})) {
        if (isSecretName(k)) problems.push(`ConfigMap ${cm.metadata.name} holds ${k}`);
        if (/:\/\/[^/\s@]*:[^/\s@]+@/.test(v)) problems.push(`ConfigMap ${cm.metadata.name}: ${k} carries credentials`);
      }
    return problems;
  },

  apiEnv: (o) => {
    const problems: string[] = [];
    const env = apiEnvOf(o);
    const parsed = loadApiEnv(env);
    for (const k of Object.keys(env))
      if (!(k in parsed)) problems.push(`the API is given ${k}, which apps/api/src/env.ts does not read`);
    for (const k of ["JUPYTER_URL", "JUPYTER_TOKEN"])
      if (k in env) problems.push(`the API holds ${k}: it must never drive kernels`);
    if ((api(o).spec as { replicas?: number }).replicas !== 1 && !env.SIGNED_LINK_SECRET)
      problems.push("several API replicas without a shared SIGNED_LINK_SECRET sign links the others refuse");
    const migrate = api(o).spec.template.spec.initContainers?.find((c) => c.name === "migrate");
    if (!migrate) problems.push("no migration step before the API starts");
    else {
      const entry = migrate.command?.find((a) => a.endsWith(".ts"));
      if (!entry || !existsSync(path.join(root, entry))) problems.push(`migrate runs ${entry}, which does not exist`);
      const extra = Object.keys(containerEnv(o, migrate, sampleSecret)).filter((k) => k !== "DATABASE_URL");
      if (extra.length) problems.push(`migrate is given ${extra.join(", ")}; it reads DATABASE_URL only`);
    }
    const entry = mainContainer(api(o)).command?.find((a) => a.endsWith(".ts"));
    if (entry !== "apps/api/src/main.ts") problems.push(`the API container runs ${entry}`);
    return problems;
  },

  cellEnv: (o) => {
    const problems: string[] = [];
    const env = cellEnvOf(o);
    // `scripts/cell.ts` reads the kernels' limits and egress for the embedded server; the worker the rest.
    const known = new Set([
      ...Object.keys(loadWorkerEnv(env)),
      ...Object.keys(kernelLimitsEnvShape),
      ...Object.keys(kernelEgressEnvShape),
    ]);
    loadKernelLimits(env);
    for (const k of Object.keys(env))
      if (!known.has(k)) problems.push(`a cell is given ${k}, which neither its worker nor its server reads`);
    if (env.KERNEL_SANDBOX !== "on")
      problems.push("cells must refuse to start without the sandbox (KERNEL_SANDBOX=on)");
    if ("JUPYTER_URL" in env) problems.push("a cell runs its own embedded server: no JUPYTER_URL");
    const cellId = mainContainer(cell(o)).env?.find((e) => e.name === "CELL_ID");
    if (cellId?.valueFrom?.fieldRef?.fieldPath !== "metadata.name") problems.push("CELL_ID is not the pod's name");
    // The API and the cells must agree on a kernel's default memory (the API refuses requests above the maximum).
    if (apiEnvOf(o).KERNEL_MEMORY_MB !== env.KERNEL_MEMORY_MB)
      problems.push("KERNEL_MEMORY_MB differs between API and cells");
    return problems;
  },

  cellSandbox: (o) => {
    const problems: string[] = [];
    const w = cell(o);
    const c = mainContainer(w);
    const sc = c.securityContext ?? {};
    if (sc.privileged !== true)
      problems.push("the cell is not privileged: bubblewrap's namespaces and the kernels' cgroups fail");
    if (sc.runAsUser !== 0) problems.push("the cell does not run as root: kernels cannot get uids of their own");
    const env = loadWorkerEnv(cellEnvOf(o));
    const data = c.volumeMounts?.find((m) => m.mountPath === env.DATA_DIR);
    const volume = w.spec.template.spec.volumes?.find((v) => v.name === data?.name);
    if (!volume || !(volume.emptyDir || volume.ephemeral))
      problems.push(`DATA_DIR ${env.DATA_DIR} is not a pod-local volume`);
    const limitMb = mebibytes(c.resources?.limits?.memory ?? "0Mi");
    const budgetMb = loadKernelLimits(cellEnvOf(o)).kernelsMemoryBudgetBytes;
    if (budgetMb === undefined)
      problems.push("KERNELS_MEMORY_BUDGET_MB unset: its default is sized from the node, not the pod");
    else if (budgetMb / 1024 ** 2 + 1024 > limitMb)
      problems.push(
        `kernels' budget ${budgetMb / 1024 ** 2} MiB leaves under 1 GiB of the pod's ${limitMb} MiB to the worker and server`,
      );
    if (c.ports?.length) problems.push("a cell serves nothing, yet declares ports");
    for (const s of byKind<K8sObject & { spec: { selector?: Record<string, string> } }>(o, "Service"))
      if (selects(s.spec.selector, w.spec.template.metadata.labels))
        problems.push(`Service ${s.metadata.name} selects cells`);
    const script = c.command?.find((a) => a.endsWith(".ts"));
    if (script !== "scripts/cell.ts" || !existsSync(path.join(root, script)))
      problems.push(`the cell runs ${c.command?.join(" ")}, not scripts/cell.ts (embedded server and worker)`);
    for (const d of [w, api(o)])
      if (d.spec.template.spec.automountServiceAccountToken !== false)
        problems.push(`${d.metadata.name} mounts a service-account token`);
    return problems;
  },

  drain: (o) => {
    const problems: string[] = [];
    const w = cell(o);
    const env = loadWorkerEnv(cellEnvOf(o));
    // The worker drains for SHUTDOWN_DEADLINE_MS; scripts/stack.ts kills it 10 s after that at the latest,
    // then stops the Jupyter server and its kernels.
    const needed = env.SHUTDOWN_DEADLINE_MS / 1000 + 10 + 10;
    const grace = w.spec.template.spec.terminationGracePeriodSeconds ?? 30;
    if (grace < needed) problems.push(`cells get ${grace} s after SIGTERM; draining needs ${needed} s`);
    for (const component of ["api", "cell"]) {
      const labels = workload(o, component).spec.template.metadata.labels;
      const pdb = byKind<K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }>(
        o,
        "PodDisruptionBudget",
      ).find((p) => selects(p.spec.selector.matchLabels, labels));
      if (!pdb) problems.push(`no PodDisruptionBudget for the ${component} pods`);
    }
    return problems;
  },

  apiProbes: async (o) => {
    const problems: string[] = [];
    const c = mainContainer(api(o));
    const port = loadApiEnv(apiEnvOf(o)).PORT;
    const named = (p: string | number) =>
      typeof p === "number" ? p : c.ports?.find((x) => x.name === p)?.containerPort;
    for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
      const probe = c[kind]?.httpGet;
      if (!probe) {
        if (kind !== "startupProbe") problems.push(`the API has no HTTP ${kind}`);
        continue;
      }
      if (named(probe.port) !== port) problems.push(`${kind} asks port ${probe.port}; the API listens on ${port}`);
      const status = await servedHealth(probe.path);
      if (status !== 200) problems.push(`${kind} asks ${probe.path}, which the API's health router answers ${status}`);
    }
    const svc = byKind<
      K8sObject & { spec: { selector: Record<string, string>; ports: Array<{ targetPort: string | number }> } }
    >(o, "Service").find((s) => selects(s.spec.selector, api(o).spec.template.metadata.labels));
    if (!svc) problems.push("no Service for the API");
    else
      for (const p of svc.spec.ports)
        if (named(p.targetPort) !== port) problems.push(`the Service targets ${p.targetPort}`);
    return problems;
  },

  networkPolicies: (o) => {
    type Peer = {
      podSelector?: { matchLabels?: Record<string, string> };
      namespaceSelector?: object;
      ipBlock?: object;
    };
    type Rule = { to?: Peer[]; from?: Peer[]; ports?: Array<{ protocol?: string; port?: number }> };
    type Policy = K8sObject & {
      spec: {
        podSelector: { matchLabels?: Record<string, string> };
        policyTypes: string[];
        ingress?: Rule[];
        egress?: Rule[];
      };
    };
    const problems: string[] = [];
    const policies = byKind<Policy>(o, "NetworkPolicy");
    const endpoint = configMap(o, "codeinterp-config").S3_ENDPOINT;
    const s3Url = endpoint ? new URL(endpoint) : null;
    const s3Port = Number(s3Url?.port || (s3Url?.protocol === "http:" ? 80 : 443));
    const apiPort = loadApiEnv(apiEnvOf(o)).PORT;
    for (const pod of allPods(o)) {
      const component = pod.metadata.labels["app.kubernetes.io/component"] ?? "?";
      const mine = policies.filter((p) => selects(p.spec.podSelector.matchLabels, pod.metadata.labels));
      if (mine.length === 0) {
        problems.push(`no NetworkPolicy selects the ${component} pods`);
        continue;
      }
      const governs = (t: string) => mine.some((p) => p.spec.policyTypes.includes(t));
      if (!governs("Ingress") || !governs("Egress"))
        problems.push(`${component}: policies govern ${mine.flatMap((p) => p.spec.policyTypes)}`);
      const egress = mine.flatMap((p) => p.spec.egress ?? []);
      const reached = new Set<number>();
      for (const rule of egress) {
        if (!rule.ports?.length) {
          problems.push(`${component}: an egress rule allows every port`);
          continue;
        }
        for (const { port } of rule.ports) {
          reached.add(port ?? -1);
          if (port === 53) {
            const dnsOnly =
              rule.to?.length && rule.to.every((p) => p.podSelector?.matchLabels?.["k8s-app"] === "kube-dns");
            if (!dnsOnly) problems.push(`${component}: port 53 open beyond the cluster's DNS`);
          } else if (![5432, 6379, s3Port].includes(port ?? -1)) problems.push(`${component}: egress to port ${port}`);
        }
      }
      for (const port of [53, 5432, 6379, s3Port])
        if (!reached.has(port)) problems.push(`${component}: cannot reach port ${port}`);
      const ingress = mine.flatMap((p) => p.spec.ingress ?? []);
      if (component === "cell" && ingress.length) problems.push("cells accept connections");
      if (component === "api")
        for (const rule of ingress)
          if (!rule.ports?.length || rule.ports.some((p) => p.port !== apiPort))
            problems.push(`the API accepts connections beyond its port ${apiPort}`);
    }
    return problems;
  },

  keda: (o) => {
    type Trigger = { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } };
    type Scaled = K8sObject & { spec: { scaleTargetRef: { name: string; kind?: string }; triggers: Trigger[] } };
    const scaled = byKind<Scaled>(o, "ScaledObject");
    const problems: string[] = [];
    const keys = new QueueKeys(configMap(o, "codeinterp-config").QUEUE_PREFIX ?? "codeinterp");
    const concurrency = loadWorkerEnv(cellEnvOf(o)).WORKER_CONCURRENCY;
    for (const s of scaled) {
      const target = s.spec.scaleTargetRef;
      if ((target.kind ?? "Deployment") !== "Deployment" || target.name !== cell(o).metadata.name)
        problems.push(`${s.metadata.name} scales ${target.kind ?? "Deployment"}/${target.name}, not the cells`);
      const lists = new Map(s.spec.triggers.filter((t) => t.type === "redis").map((t) => [t.metadata.listName, t]));
      const waiting = lists.get(keys.toKey(queueNames.executions, "wait"));
      const running = lists.get(keys.toKey(queueNames.executions, "active"));
      if (!waiting) problems.push(`no trigger reads BullMQ's wait list ${keys.toKey(queueNames.executions, "wait")}`);
      if (!running)
        problems.push(`no trigger reads BullMQ's active list ${keys.toKey(queueNames.executions, "active")}`);
      else if (Number(running.metadata.listLength) !== concurrency)
        problems.push(`the active list counts ${running.metadata.listLength} jobs a cell, cells run ${concurrency}`);
      for (const t of s.spec.triggers) {
        const auth = byKind<K8sObject & { spec: { secretTargetRef: Array<{ name: string }> } }>(
          o,
          "TriggerAuthentication",
        ).find((a) => a.metadata.name === t.authenticationRef?.name);
        if (!auth) problems.push(`trigger on ${t.metadata.listName} has no TriggerAuthentication`);
        else if (auth.spec.secretTargetRef.some((r) => r.name !== SECRET_NAME))
          problems.push("KEDA reads another Secret");
      }
    }
    return problems;
  },

  images: (o) => {
    const problems: string[] = [];
    const dockerfile = read("Dockerfile");
    const compose = parse(read("docker-compose.yml"), { merge: true }) as {
      services: Record<string, { image?: string }>;
    };
    const appRepo = repository(compose.services.api?.image ?? "");
    for (const c of containersOf(api(o).spec.template.spec))
      if (repository(c.image) !== appRepo) problems.push(`${c.name} runs ${c.image}; the app image is ${appRepo}`);
    const c = mainContainer(cell(o));
    if (repository(c.image) !== "codeinterp-cell") problems.push(`the cell runs ${c.image}, not codeinterp-cell`);
    if (!dockerfile.includes("--target cell -t codeinterp-cell"))
      problems.push("the Dockerfile does not say how to build codeinterp-cell");
    const stages = [...dockerfile.matchAll(/^FROM (\S+)(?: AS (\S+))?$/gm)];
    const cellStage = dockerfile.slice(dockerfile.search(/^FROM \S+ AS cell$/m));
    const cellText = cellStage.slice(0, cellStage.indexOf("\nFROM "));
    if (!stages.some((s) => s[2] === "cell")) problems.push("the Dockerfile has no cell stage");
    if (stages.at(-1)?.[1] !== "app") problems.push("the Dockerfile's default target is not the app image");
    for (const pkg of [...APT_PACKAGES, "tini"])
      if (!new RegExp(`\\b${pkg}\\b`).test(cellText)) problems.push(`the cell image does not install ${pkg}`);
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(cellText)?.[1] ?? "[]") as string[];
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(cellText)?.[1] ?? "[]") as string[];
    if (JSON.stringify(c.command) !== JSON.stringify([...entrypoint, ...cmd]))
      problems.push(
        `the cell's command ${c.command?.join(" ")} is not the image's ${[...entrypoint, ...cmd].join(" ")}`,
      );
    return problems;
  },

  namespace: (o) => {
    const privileged = allPods(o).some((p) => p.spec.containers.some((c) => c.securityContext?.privileged));
    return byKind<K8sObject & { metadata: { labels?: Record<string, string> } }>(o, "Namespace")
      .filter((n) => privileged && n.metadata.labels?.["pod-security.kubernetes.io/enforce"] !== "privileged")
      .map((n) => `Namespace ${n.metadata.name} refuses the privileged cells`);
  },

  ingress: (o) => {
    type Ing = K8sObject & {
      metadata: { annotations?: Record<string, string> };
      spec: {
        rules: Array<{ http: { paths: Array<{ backend: { service: { name: string; port: { name?: string } } } }> } }>;
      };
    };
    const problems: string[] = [];
    const maxUpload = loadApiEnv(apiEnvOf(o)).MAX_UPLOAD_BYTES;
    for (const ing of byKind<Ing>(o, "Ingress")) {
      for (const p of ing.spec.rules.flatMap((r) => r.http.paths))
        if (p.backend.service.name !== "codeinterp-api" || p.backend.service.port.name !== "http")
          problems.push(`Ingress routes to ${p.backend.service.name}:${p.backend.service.port.name}`);
      const body = /^(\d+)m$/.exec(ing.metadata.annotations?.["nginx.ingress.kubernetes.io/proxy-body-size"] ?? "");
      if (!body || Number(body[1]) * 1024 * 1024 < maxUpload)
        problems.push(`the Ingress refuses uploads under MAX_UPLOAD_BYTES`);
    }
    return problems;
  },
} satisfies Record<string, Check>;

const layouts = {
  base: "deploy/kustomize/base",
  production: "deploy/kustomize/overlays/production",
} as const;
const rendered = Object.fromEntries(Object.entries(layouts).map(([k, dir]) => [k, render(dir)])) as Record<
  keyof typeof layouts,
  K8sObject[]
>;

describe("deploy/kustomize", () => {
  for (const [layout, objects] of Object.entries(rendered)) {
    describe(layout, () => {
      for (const [name, check] of Object.entries(checks))
        it(`${name}: no problems`, async () => {
          expect(await check(objects)).toEqual([]);
        });
    });
  }

  it("production adds KEDA's scaling, the Ingress and a namespace that admits the cells", () => {
    const kinds = rendered.production.map((o) => o.kind);
    expect(kinds).toEqual(expect.arrayContaining(["ScaledObject", "TriggerAuthentication", "Ingress", "Namespace"]));
    expect(rendered.base.map((o) => o.kind)).not.toContain("ScaledObject");
  });

  it("the schema check refuses a malformed object", () => {
    const broken = structuredClone(cell(rendered.base));
    (broken.spec.template.spec as unknown as Record<string, unknown>).terminationGracePeriodSeconds = "sixty";
    expect(schemaProblem(broken)).toMatch(/terminationGracePeriodSeconds/);
  });
});

describe("each check notices a deployment broken on purpose", () => {
  const breakages: Array<[keyof typeof checks, string, (o: K8sObject[]) => void]> = [
    [
      "secrets",
      "a database URL written into the cell",
      (o) => {
        const e = mainContainer(cell(o)).env!.find((x) => x.name === "DATABASE_URL")!;
        delete e.valueFrom;
        e.value = "postgresql://u:p@db:5432/codeinterp";
      },
    ],
    [
      "cellEnv",
      "a misspelt setting",
      (o) => void mainContainer(cell(o)).env!.push({ name: "KERNEL_SANDBOXX", value: "on" }),
    ],
    ["cellSandbox", "an unprivileged cell", (o) => void (mainContainer(cell(o)).securityContext!.privileged = false)],
    ["drain", "a 30 s grace period", (o) => void (cell(o).spec.template.spec.terminationGracePeriodSeconds = 30)],
    [
      "apiProbes",
      "a probe on a route the API lacks",
      (o) => void (mainContainer(api(o)).readinessProbe!.httpGet!.path = "/ready"),
    ],
    [
      "networkPolicies",
      "cells allowed anywhere",
      (o) => {
        const p = byKind<K8sObject & { spec: { egress: object[] } }>(o, "NetworkPolicy").find(
          (x) => x.metadata.name === "codeinterp-cell",
        )!;
        p.spec.egress.push({});
      },
    ],
    [
      "keda",
      "the wait list misnamed",
      (o) => {
        const s = byKind<K8sObject & { spec: { triggers: Array<{ metadata: Record<string, string> }> } }>(
          o,
          "ScaledObject",
        )[0]!;
        s.spec.triggers[0]!.metadata.listName = "codeinterp:executions:waiting";
      },
    ],
    [
      "images",
      "the cell on the app image",
      (o) => void (mainContainer(cell(o)).image = "registry.example.com/codeinterp:0.1.0"),
    ],
  ];
  for (const [check, what, breakIt] of breakages)
    it(`${check}: ${what}`, async () => {
      const objects = structuredClone(rendered.production);
      breakIt(objects);
      expect((await checks[check](objects)).length).toBeGreaterThan(0);
    });
});
