import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { BlobNotFoundError, createBlobStore, isBlobKey } from "@codeinterp/workspace";
import type { LocalBlobStore, PutResult } from "@codeinterp/workspace";

export interface BlobCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  /** Leases served from disk / that found nothing cached. */
  hits: number;
  misses: number;
  evicted: number;
}

/**
 * A machine's size-bounded copy of blobs kept in a remote store, least recently used evicted first. Blobs are
 * content-addressed, so a cached copy never goes stale: its bytes are its key's whatever happens in the bucket.
 *
 * Readers never use the cache's own file names, which eviction may unlink at any moment: a `lease` is a
 * private hard link (the local store's spare link, in the cache's temp directory) that keeps the inode alive
 * until `release`, so eviction only ever drops the cache's name for it. Hence no pin counts, and two
 * processes evicting in one directory could not pull a file from under each other (each process still gets
 * a directory of its own so that each bound holds).
 */
export interface BlobCache {
  readonly store: LocalBlobStore;
  lease(key: string): Promise<PutResult | null>;
  release(lease: PutResult): Promise<void>;
  /** Streams `body` into the cache; BlobCorruptError (nothing kept) unless it hashes to `key`. */
  fill(key: string, body: Readable): Promise<void>;
  /** Records a blob just put into the cache (`store.put`), evicting beyond the bound. */
  admit(key: string, size: number): Promise<void>;
  forget(key: string): Promise<void>;
  stats(): BlobCacheStats;
}

export function createBlobCache(opts: { dir: string; maxBytes: number }): BlobCache {
  const store = createBlobStore(opts.dir, { root: path.resolve(opts.dir) });
  /** Key -> size, in order of last use (a Map iterates in insertion order; a use re-inserts). */
  const index = new Map<string, number>();
  let bytes = 0;
  const counts = { hits: 0, misses: 0, evicted: 0 };
  let loaded: Promise<void> | null = null;

  /** What an earlier run left, oldest written first (the order of use is not kept across restarts). */
  async function load(): Promise<void> {
    const found: Array<{ key: string; size: number; mtimeMs: number }> = [];
    const list = (dir: string) => readdir(dir).catch(() => [] as string[]);
    for (const a of await list(store.root)) {
      if (a.length !== 2) continue;
      for (const b of await list(path.join(store.root, a)))
        for (const key of await list(path.join(store.root, a, b))) {
          if (!isBlobKey(key)) continue;
          const st = await stat(path.join(store.root, a, b, key)).catch(() => null);
          if (st?.isFile()) found.push({ key, size: st.size, mtimeMs: st.mtimeMs });
        }
    }
    found.sort((x, y) => x.mtimeMs - y.mtimeMs);
    for (const f of found) if (!index.has(f.key)) record(f.key, f.size);
    await evict();
  }
  const ready = () => (loaded ??= load());

  function record(key: string, size: number): void {
    const had = index.get(key);
    if (had !== undefined) bytes -= had;
    index.delete(key);
    index.set(key, size);
    bytes += size;
  }

  async function evict(): Promise<void> {
    for (const [key, size] of index) {
      if (bytes <= opts.maxBytes) break;
      index.delete(key);
      bytes -= size;
      counts.evicted++;
      await store.remove(key);
    }
  }

  async function lease(key: string): Promise<PutResult | null> {
    await ready();
    try {
      const l = await store.keepSpare(key);
      counts.hits++;
      record(key, l.size);
      return l;
    } catch (err) {
      if (!(err instanceof BlobNotFoundError)) throw err;
      counts.misses++;
      const had = index.get(key);
      if (had !== undefined) {
        index.delete(key);
        bytes -= had;
      }
      return null;
    }
  }

  async function admit(key: string, size: number): Promise<void> {
    await ready();
    record(key, size);
    await evict();
  }

  return {
    store,
    lease,
    release: async (l) => {
      await store.settle(l, { restore: false });
    },
    async fill(key, body) {
      const put = await store.put(body, { expectSha256: key });
      await admit(key, put.size);
    },
    admit,
    async forget(key) {
      await ready();
      const had = index.get(key);
      if (had !== undefined) {
        index.delete(key);
        bytes -= had;
      }
      await store.remove(key);
    },
    stats: () => ({ entries: index.size, bytes, maxBytes: opts.maxBytes, ...counts }),
  };
}
