-- CreateTable
CREATE TABLE "librechat_sessions" (
    "id" TEXT NOT NULL,
    "tenant" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "librechat_user" TEXT NOT NULL,
    "execution_id" UUID,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "librechat_sessions_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "librechat_session_files" (
    "session_id" TEXT NOT NULL,
    "file_id" UUID NOT NULL,

    CONSTRAINT "librechat_session_files_pkey" PRIMARY KEY ("session_id","file_id")
);

-- CreateIndex
CREATE UNIQUE INDEX "librechat_sessions_execution_id_key" ON "librechat_sessions"("execution_id");

-- CreateIndex
CREATE INDEX "librechat_sessions_user_id_idx" ON "librechat_sessions"("user_id");

-- CreateIndex
CREATE INDEX "librechat_session_files_file_id_idx" ON "librechat_session_files"("file_id");

-- AddForeignKey
ALTER TABLE "librechat_sessions" ADD CONSTRAINT "librechat_sessions_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "librechat_sessions" ADD CONSTRAINT "librechat_sessions_execution_id_fkey" FOREIGN KEY ("execution_id") REFERENCES "executions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "librechat_session_files" ADD CONSTRAINT "librechat_session_files_session_id_fkey" FOREIGN KEY ("session_id") REFERENCES "librechat_sessions"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "librechat_session_files" ADD CONSTRAINT "librechat_session_files_file_id_fkey" FOREIGN KEY ("file_id") REFERENCES "files"("id") ON DELETE CASCADE ON UPDATE CASCADE;
