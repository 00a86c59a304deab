-- CreateIndex: which message a live kernel serves (the admin kernels page looks executions up by kernel).
CREATE INDEX "executions_kernel_id_idx" ON "executions"("kernel_id");
