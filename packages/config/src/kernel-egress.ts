import { z } from "zod";
import { ConfigError, parseEnv } from "./env";

/**
 * Whether kernels reach anything outside their sandbox. `none` (the default): nothing at all. `allowlist`:
 * the hosts, addresses and ranges in KERNEL_EGRESS_ALLOW, only through the egress proxy the embedded server
 * runs (HTTP and HTTPS; see @codeinterp/kernel-host's egress/allowlist.ts for the entry syntax).
 */
export const kernelEgressEnvShape = {
  KERNEL_EGRESS: z.enum(["none", "allowlist"]).default("none"),
  KERNEL_EGRESS_ALLOW: z.string().default(""),
};

const kernelEgressSchema = z.object(kernelEgressEnvShape);

/** The allowlist text when egress is on, null when kernels have no way out. */
export function loadKernelEgress(source: Record<string, string | undefined>): { allow: string } | null {
  const e = parseEnv(kernelEgressSchema, source);
  if (e.KERNEL_EGRESS === "none") return null;
  if (e.KERNEL_EGRESS_ALLOW.trim() === "")
    throw new ConfigError("KERNEL_EGRESS=allowlist needs KERNEL_EGRESS_ALLOW (host names, addresses or ranges)");
  return { allow: e.KERNEL_EGRESS_ALLOW };
}
