-- CreateEnum
CREATE TYPE "api_key_kind" AS ENUM ('user', 'tenant');

-- AlterTable: every existing key stays a user key.
ALTER TABLE "api_keys" ADD COLUMN "kind" "api_key_kind" NOT NULL DEFAULT 'user';

-- CreateTable: the one chat each (user, message id) belongs to.
CREATE TABLE "message_chats" (
    "user_id" TEXT NOT NULL,
    "message_id" TEXT NOT NULL,
    "chat_id" TEXT NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "message_chats_pkey" PRIMARY KEY ("user_id","message_id")
);

-- AddForeignKey
ALTER TABLE "message_chats" ADD CONSTRAINT "message_chats_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Backfill: a message already used keeps the chat of its first execution.
INSERT INTO "message_chats" ("user_id", "message_id", "chat_id", "created_at")
SELECT DISTINCT ON ("user_id", "message_id") "user_id", "message_id", "chat_id", "created_at"
FROM "executions"
ORDER BY "user_id", "message_id", "created_at";
