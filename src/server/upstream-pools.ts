// One keep-alive undici Pool per upstream origin. Dispatching on the Pool directly skips
// Agent's extra dispatch layer on every request; the set of origins is bounded by the
// Connectors configured, so pools are kept for the life of the process.
import { Pool } from 'undici';

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly options: Pool.Options) {}

  get(origin: string): Pool {
    let p = this.pools.get(origin);
    if (p === undefined) {
      p = new Pool(origin, this.options);
      this.pools.set(origin, p);
    }
    return p;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
    this.pools.clear();
  }
}
