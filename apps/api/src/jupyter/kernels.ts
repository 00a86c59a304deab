import { randomUUID } from "node:crypto";
import type { Redis } from "@codeinterp/queue";
import { jupyterKernelKey, jupyterUserKernelsKey, markKernelReset, markKernelRetired } from "@codeinterp/queue";
import { workspaceId } from "@codeinterp/workspace";

/** Every kernel of the Jupyter surface is a message of this chat (so `/v1/chats/jupyter/files` lists their files). */
export const JUPYTER_CHAT_ID = "jupyter";

export interface FacadeKernel {
  id: string;
  userId: string;
  messageId: string;
  createdAt: string;
  lastActivity: string;
  /** The execution running for it now, if any (what an interrupt cancels). */
  running: string | null;
  executionCount: number;
}

/**
 * Jupyter-surface kernel id → (user, message), in Redis so that any API instance serves any kernel's REST
 * calls and websocket. A record not used for the idle time expires, as the message's kernel is culled.
 */
export function createKernelStore(redis: Redis, prefix: string, idleMs: number) {
  const key = (id: string) => jupyterKernelKey(prefix, id);
  const userSet = (userId: string) => jupyterUserKernelsKey(prefix, userId);

  function fromHash(id: string, h: Record<string, string>): FacadeKernel | null {
    if (!h.userId || !h.messageId) return null;
    return {
      id,
      userId: h.userId,
      messageId: h.messageId,
      createdAt: h.createdAt ?? new Date(0).toISOString(),
      lastActivity: h.lastActivity ?? h.createdAt ?? new Date(0).toISOString(),
      running: h.running || null,
      executionCount: Number(h.executionCount ?? 0) || 0,
    };
  }

  const store = {
    async create(userId: string): Promise<FacadeKernel> {
      const id = randomUUID();
      const now = new Date().toISOString();
      const k: FacadeKernel = {
        id,
        userId,
        messageId: `jupyter-${id}`,
        createdAt: now,
        lastActivity: now,
        running: null,
        executionCount: 0,
      };
      await redis
        .multi()
        .hset(key(id), {
          userId,
          messageId: k.messageId,
          createdAt: now,
          lastActivity: now,
          running: "",
          executionCount: "0",
        })
        .pexpire(key(id), idleMs)
        .sadd(userSet(userId), id)
        .pexpire(userSet(userId), Math.max(idleMs, 24 * 3600_000))
        .exec();
      return k;
    },

    /** The kernel when it exists and is this user's; another user's kernel is as absent as a missing one. */
    async get(userId: string, id: string): Promise<FacadeKernel | null> {
      if (!/^[0-9a-f-]{36}$/.test(id)) return null;
      const k = fromHash(id, await redis.hgetall(key(id)));
      return k && k.userId === userId ? k : null;
    },

    async list(userId: string): Promise<FacadeKernel[]> {
      const ids = await redis.smembers(userSet(userId));
      const kernels: FacadeKernel[] = [];
      const gone: string[] = [];
      for (const id of ids.slice(0, 1000)) {
        const k = await store.get(userId, id);
        if (k) kernels.push(k);
        else gone.push(id);
      }
      if (gone.length) await redis.srem(userSet(userId), ...gone);
      return kernels;
    },

    /** Marks activity (the record lives on); returns the next execution count when `execute` is set. */
    async touch(id: string, opts: { execute?: boolean } = {}): Promise<number> {
      const m = redis.multi().hset(key(id), "lastActivity", new Date().toISOString());
      if (opts.execute) m.hincrby(key(id), "executionCount", 1);
      m.pexpire(key(id), idleMs);
      const res = await m.exec();
      return opts.execute ? Number(res?.[1]?.[1] ?? 0) : 0;
    },

    async setRunning(id: string, executionId: string | null): Promise<void> {
      // Only an existing record: a kernel deleted meanwhile stays deleted.
      if (await redis.exists(key(id))) await redis.hset(key(id), "running", executionId ?? "");
    },

    /** Restart: the message's next execution starts on a fresh kernel (the worker consumes the mark). */
    async requestReset(k: FacadeKernel): Promise<void> {
      const tx = redis.multi().hset(key(k.id), { executionCount: "0", lastActivity: new Date().toISOString() });
      await markKernelReset(tx, prefix, workspaceId(k.userId, k.messageId)).exec();
    },

    /** The id is gone at once; the message's kernel goes at the workers' next sweep. */
    async remove(k: FacadeKernel): Promise<void> {
      const tx = redis.multi().del(key(k.id)).srem(userSet(k.userId), k.id);
      await markKernelRetired(tx, prefix, workspaceId(k.userId, k.messageId)).exec();
    },
  };
  return store;
}

export type KernelStore = ReturnType<typeof createKernelStore>;

export function kernelModel(k: FacadeKernel) {
  return {
    id: k.id,
    name: "python3",
    last_activity: k.lastActivity,
    execution_state: k.running ? "busy" : "idle",
    connections: 0,
  };
}
