import { z } from "zod";

/**
 * The disk budget of one workspace, in MB. Applied only where DATA_DIR is on btrfs with quotas enabled
 * (each workspace is then a subvolume with a qgroup limit); elsewhere workspaces have no budget and the
 * worker's start log and /readyz say so.
 */
export const workspaceDiskEnvShape = {
  WORKSPACE_DISK_MB: z.coerce.number().int().min(1).default(1024),
};
