// A keyed work queue in the manner of client-go's workqueue: a key added while it waits is
// queued once; at most `concurrency` workers run `handle`, each taking the next waiting key.
// Used by the status and Service writers, whose work per key is "make the cluster match".
export class KeyedWorkQueue<K> {
  private readonly waiting = new Set<K>();
  private running = 0;
  private stopped = false;

  constructor(private readonly handle: (key: K) => Promise<void>, private readonly concurrency = 4) {}

  add(key: K): void {
    if (this.stopped) return;
    this.waiting.add(key);
    while (this.running < this.concurrency && this.waiting.size > 0) void this.work();
  }

  /** Drops what waits; the keys being handled finish, and no worker takes another. */
  stop(): void {
    this.stopped = true;
    this.waiting.clear();
  }

  private async work(): Promise<void> {
    this.running++;
    try {
      for (const key of this.waiting) {
        if (this.stopped) return;
        this.waiting.delete(key);
        await this.handle(key);
      }
    } finally {
      this.running--;
    }
  }
}
