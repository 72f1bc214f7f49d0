// A file that several processes update at once: the autotune cache, shared by the trials of a
// Slurm job array on one node or by every node of a cluster through a shared home folder. Each
// update is read-modify-write under an exclusive lock on a sidecar file `<path>.lock`, and the
// write itself is atomic (temp + rename): a reader never sees a partial file, and no writer's
// entries are lost because each writer merges into what is on disk while it holds the lock.
//
// Why flock(2) on a sidecar rather than a lock file created with O_EXCL: the kernel drops a flock
// when its holder dies (SIGKILL at the end of a preemption's grace time included), so there is no
// stale lock to recognise by age or pid, guesses that go wrong across the hosts of a cluster.
// Linux's NFS client turns flock into byte-range locks the server arbitrates (NFSv4, or NLM on
// v3), so the lock holds across nodes too, unless the share is mounted with local_lock=flock|all.

/** How long to wait for another writer before giving up (a cache write is best effort). */
const DEFAULT_TIMEOUT_MS = 30_000;

export class LockTimeoutError extends Error {
  override name = "LockTimeoutError";
}

export interface UpdateOptions {
  timeoutMs?: number;
}

/**
 * Replaces the text of `path` with `update(current)` (current is null when the file does not
 * exist yet), holding `<path>.lock` exclusively from the read to the rename. Creates the folder.
 */
export async function updateSharedFile(
  path: string,
  update: (current: string | null) => string,
  opts: UpdateOptions = {},
): Promise<void> {
  const slash = path.lastIndexOf("/");
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
  await withFileLock(`${path}.lock`, async () => {
    let current: string | null = null;
    try {
      current = await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await writeTextAtomic(path, update(current));
  }, opts);
}

/**
 * Runs `fn` while holding an exclusive flock on `lockPath`. The lock file is created if missing
 * and never removed: unlinking it while another process waits on the old file would let a third
 * one lock a new file, two holders at once.
 */
export async function withFileLock<T>(
  lockPath: string,
  fn: () => Promise<T>,
  opts: UpdateOptions = {},
): Promise<T> {
  const file = await Deno.open(lockPath, { create: true, write: true });
  try {
    await acquire(file, lockPath, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    try {
      return await fn();
    } finally {
      await file.unlock();
    }
  } finally {
    file.close();
  }
}

/**
 * Polls tryLock instead of a blocking lock(): a blocked lock() cannot be given up, and a holder
 * hung on a dead NFS server would hang every trial behind it.
 */
async function acquire(file: Deno.FsFile, lockPath: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let waitMs = 1;
  while (!(await file.tryLock(true))) {
    if (performance.now() > deadline) {
      throw new LockTimeoutError(
        `${lockPath}: still locked by another process after ${timeoutMs} ms`,
      );
    }
    await new Promise((r) => setTimeout(r, waitMs));
    waitMs = Math.min(waitMs * 2, 50);
  }
}

async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
