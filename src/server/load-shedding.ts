// Admission control (issue 19): bounded work, so a burst of pipelines cannot grow the proxy
// past its container's memory and get every stream on the replica killed at once. Beyond
// the caps a request is answered 503 with Retry-After before any upstream work, and what was
// admitted keeps going. Two caps: exchanges in flight (requests being relayed, Upgrade
// sessions and CONNECT tunnels included: a long stream holds memory like any other), and open
// client connections (idle kept-alive ones too): a connection over the cap gets 503 on its
// first request and is closed.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

export interface Capacity {
  /** Exchanges relayed at once; 0: no cap. */
  readonly maxExchanges: number;
  /** Open client connections; 0: no cap. */
  readonly maxConnections: number;
}

export type ShedReason = 'exchanges' | 'connections';

export interface Shed {
  readonly status: 503;
  readonly message: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly reason: ShedReason;
}

/** Seconds a shed client is asked to wait: long enough for streams to finish, short for a pipeline. */
const RETRY_AFTER_S = '2';

export class LoadShedder {
  private open = 0;
  /** Connections accepted over the cap: refused at their first request. */
  private readonly over = new WeakSet<object>();
  private readonly exchangesFull: Shed;
  private readonly connectionsFull: Shed;

  constructor(
    private readonly cap: Capacity,
    /** Exchanges in flight now. */
    private readonly inFlight: () => number,
    private readonly onShed: (reason: ShedReason) => void = () => undefined,
  ) {
    const headers = Object.freeze({ 'retry-after': RETRY_AFTER_S, connection: 'close' });
    this.exchangesFull = Object.freeze({
      status: 503, headers, reason: 'exchanges',
      message: `the proxy is at its limit of ${cap.maxExchanges} requests in flight (--max-concurrent-exchanges): try again in ${RETRY_AFTER_S} s`,
    });
    this.connectionsFull = Object.freeze({
      status: 503, headers, reason: 'connections',
      message: `the proxy is at its limit of ${cap.maxConnections} client connections (--max-client-connections): try again in ${RETRY_AFTER_S} s`,
    });
  }

  /** Client connections open now (metrics). */
  get connections(): number {
    return this.open;
  }

  /** The `connection` listener of every client-facing server. */
  readonly onConnection = (socket: Socket): void => {
    this.open++;
    socket.once('close', () => { this.open--; });
    if (this.cap.maxConnections > 0 && this.open > this.cap.maxConnections) this.over.add(socket);
  };

  /** Undefined: admit. Else the 503 to answer with (counted). */
  check(req: IncomingMessage): Shed | undefined {
    if (this.over.has(req.socket)) return this.shed(this.connectionsFull);
    if (this.cap.maxExchanges > 0 && this.inFlight() >= this.cap.maxExchanges) return this.shed(this.exchangesFull);
    return undefined;
  }

  private shed(s: Shed): Shed {
    this.onShed(s.reason);
    return s;
  }
}
