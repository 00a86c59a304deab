import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

// No cluster here: this keeps the NetworkPolicy that docs/kubernetes.md tells operators to apply default-deny.
const doc = readFileSync(path.resolve(import.meta.dirname, "../docs/kubernetes.md"), "utf8");

type Peer = { podSelector?: { matchLabels?: Record<string, string> }; namespaceSelector?: unknown; ipBlock?: unknown };
type Rule = { to?: Peer[]; from?: Peer[]; ports?: Array<{ protocol?: string; port?: number }> };
type Policy = {
  kind: string;
  spec: {
    podSelector: { matchLabels: Record<string, string> };
    policyTypes: string[];
    egress?: Rule[];
    ingress?: Rule[];
  };
};

const manifests = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parse(m[1] ?? "") as Policy);
const policy = manifests.find((m) => m.kind === "NetworkPolicy");

describe("kernel pods' NetworkPolicy in docs/kubernetes.md", () => {
  it("selects kernel pods and governs both directions", () => {
    expect(policy?.spec.podSelector.matchLabels).toEqual({ component: "kernel" });
    expect(policy?.spec.policyTypes.sort()).toEqual(["Egress", "Ingress"]);
  });

  it("lets kernels reach only the gateway's response port: no DNS, no ip blocks, nothing else", () => {
    const egress = policy?.spec.egress ?? [];
    expect(egress).toHaveLength(1);
    const [rule] = egress;
    expect(rule?.ports).toEqual([{ protocol: "TCP", port: 8877 }]);
    for (const peer of rule?.to ?? []) {
      expect(peer.ipBlock).toBeUndefined();
      expect(peer.podSelector?.matchLabels).toMatchObject({ app: "enterprise-gateway" });
    }
  });

  it("lets only the gateway open the kernel's ports", () => {
    const peers = (policy?.spec.ingress ?? []).flatMap((r) => r.from ?? []);
    expect(peers.length).toBeGreaterThan(0);
    for (const peer of peers) expect(peer.podSelector?.matchLabels).toMatchObject({ app: "enterprise-gateway" });
  });
});
