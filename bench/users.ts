// Many users of one deployment: each gets an API key of its own (as a chat product's users would) and
// uploads its own copy of the attachment.
import type { apiClient as ApiClientFn } from "./client";
import { apiClient } from "./client";
import type { Bench } from "./context";

export interface BenchUser {
  userId: string;
  key: string;
  ci: ReturnType<typeof ApiClientFn>;
}

export async function createUsers(b: Bench, tag: string, n: number): Promise<BenchUser[]> {
  const users: BenchUser[] = [];
  for (let i = 0; i < n; i++) {
    const userId = `bench-${tag}-${i}`;
    const res = await fetch(`${b.apiUrl}/v1/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${b.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ userId }),
    });
    if (res.status !== 201) throw new Error(`api key for ${userId}: ${res.status} ${await res.text()}`);
    const key = ((await res.json()) as { key: string }).key;
    users.push({ userId, key, ci: apiClient(b.apiUrl, key) });
  }
  return users;
}
