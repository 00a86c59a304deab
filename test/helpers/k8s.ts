// Rendering deploy/kustomize and reading what the rendered objects say, for test/deploy-manifests.unit.test.ts.
import { execFileSync } from "node:child_process";
import path from "node:path";
import { parseAllDocuments } from "yaml";
import { ConfigMap, Namespace, Service, ServiceAccount } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Ingress, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";

export const root = path.resolve(import.meta.dirname, "../..");

export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; [k: string]: unknown } } & Record<
  string,
  unknown
>;

/** `kubectl kustomize <dir>` (kubectl's built-in kustomize; no cluster needed), parsed. */
export function render(dir: string): K8sObject[] {
  const out = execFileSync("kubectl", ["kustomize", path.join(root, dir)], { encoding: "utf8" });
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject);
}

// The Kubernetes 1.3x OpenAPI schemas (and KEDA's CRDs) as the kubernetes-models packages compile them:
// types, required fields and enums, checked without an API server (kubectl's validation needs one).
const models: Record<string, { validate(): void } & (new (data: object) => { validate(): void })> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Namespace": Namespace,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "apps/v1/Deployment": Deployment,
  "networking.k8s.io/v1/Ingress": Ingress,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
} as never;

/** Schema problems of one object ("" when it is valid); an unknown kind is a problem too. */
export function schemaProblem(o: K8sObject): string {
  const Model = models[`${o.apiVersion}/${o.kind}`];
  if (!Model) return `${o.apiVersion}/${o.kind} ${o.metadata.name}: no schema known to this test`;
  try {
    new Model(o).validate();
    return "";
  } catch (err) {
    return `${o.kind} ${o.metadata.name}: ${(err as Error).message}`;
  }
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string };
    fieldRef?: { fieldPath: string };
  };
}
export interface Probe {
  httpGet?: { path: string; port: string | number };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: EnvVar[];
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  securityContext?: Record<string, unknown>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
  volumes?: Array<{ name: string; emptyDir?: object; ephemeral?: object }>;
}
export type Workload = K8sObject & {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
};

export const byKind = <T = K8sObject>(objects: K8sObject[], kind: string) =>
  objects.filter((o) => o.kind === kind) as T[];

/** The Deployment whose pods carry app.kubernetes.io/component=<component>. */
export function workload(objects: K8sObject[], component: string): Workload {
  const found = byKind<Workload>(objects, "Deployment").find(
    (d) => d.spec.template.metadata.labels["app.kubernetes.io/component"] === component,
  );
  if (!found) throw new Error(`no Deployment for ${component}`);
  return found;
}

/** A ConfigMap by the name the base gives it (the generator adds a content hash). */
export function configMap(objects: K8sObject[], name: string): Record<string, string> {
  const found = byKind<K8sObject & { data?: Record<string, string> }>(objects, "ConfigMap").find(
    (c) => c.metadata.name === name || c.metadata.name.startsWith(`${name}-`),
  );
  if (!found) throw new Error(`no ConfigMap ${name}`);
  return found.data ?? {};
}

/**
 * A container's environment as the kubelet gives it: envFrom ConfigMaps, then `env` (which wins). Secret
 * references come back as `sample(name)`, field references as `field-<path>`, so the app's schema can
 * parse the whole of it.
 */
export function containerEnv(
  objects: K8sObject[],
  c: Container,
  sample: (name: string) => string,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, configMapByRenderedName(objects, from.configMapRef.name));
    if (from.secretRef) throw new Error(`${c.name}: envFrom a whole Secret hides which keys it reads`);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.secretKeyRef) env[e.name] = sample(e.name);
    else if (e.valueFrom?.configMapKeyRef)
      env[e.name] =
        configMapByRenderedName(objects, e.valueFrom.configMapKeyRef.name)[e.valueFrom.configMapKeyRef.key] ?? "";
    // What the downward API would give, in the shape the env schemas accept: a pod named like ours.
    else if (e.valueFrom?.fieldRef)
      env[e.name] = `field-${e.valueFrom.fieldRef.fieldPath.replace(/[^A-Za-z0-9]+/g, "-")}`;
  }
  return env;
}

function configMapByRenderedName(objects: K8sObject[], name: string): Record<string, string> {
  const found = byKind<K8sObject & { data?: Record<string, string> }>(objects, "ConfigMap").find(
    (c) => c.metadata.name === name,
  );
  if (!found) throw new Error(`a container refers to ConfigMap ${name}, which is not rendered`);
  return found.data ?? {};
}

/** "8Gi" → MiB. */
export function mebibytes(quantity: string): number {
  const m = /^(\d+)(Mi|Gi|Ti)$/.exec(quantity);
  if (!m) throw new Error(`unexpected quantity ${quantity}`);
  return Number(m[1]) * { Mi: 1, Gi: 1024, Ti: 1024 * 1024 }[m[2] as "Mi" | "Gi" | "Ti"];
}
