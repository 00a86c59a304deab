-- AlterTable: the memory an execution asked for its kernel (MB); null = the deployment's default.
ALTER TABLE "executions" ADD COLUMN "memory_mb" INTEGER;
