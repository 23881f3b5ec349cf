// An `Upgrade` exchange (WebSocket, SPDY): after the tool answers 101, the two sockets are
// joined and bytes flow both ways untouched until either side closes. A refused upgrade
// (401, 404, ...) is relayed and the connection closed.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { clientResponseHeaders } from '../../http/headers';
import type { ExchangeEnd } from '../exchange';
import { classifyUpstreamError, sendSocketError } from '../errors';

export interface UpgradeRelay {
  /** Rewrites the response headers (reverse mode's Location and challenge); identity in forward mode. */
  readonly modifyHeaders: (headers: string[]) => void;
  /** The subject of error messages. */
  readonly what: () => string;
  readonly onEnd: (end: ExchangeEnd) => void;
}

export function relayUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, r: UpgradeRelay): Dispatcher.DispatchHandler {
  let done = false;
  const finish = (end: ExchangeEnd): void => { if (!done) { done = true; r.onEnd(end); } };
  let abortUpstream: ((err?: Error) => void) | undefined;
  let upgraded = false;
  // Before the 101 a closed client aborts the exchange; after it, closing is how a session ends.
  client.once('close', () => {
    if (!done && !upgraded) { abortUpstream?.(new Error('client closed')); finish({ status: 499, clientAborted: true }); }
  });
  const headersOf = (raw: Buffer[]): string[] => {
    const h = clientResponseHeaders(raw);
    r.modifyHeaders(h);
    return h;
  };
  return {
    onConnect(abort) { abortUpstream = abort; },
    onHeaders(statusCode, rawHeaders) {
      client.write(responseHead(statusCode, headersOf(rawHeaders as Buffer[]), 'connection: close\r\n'));
      finish({ status: statusCode });
      return true;
    },
    onData(chunk) { client.write(chunk); return true; },
    onComplete() { client.end(); },
    onUpgrade(statusCode, rawHeaders, upstream) {
      upgraded = true;
      // undici consumed Connection and Upgrade as hop-by-hop; a 101 must carry them.
      const upgrade = `connection: Upgrade\r\nupgrade: ${req.headers.upgrade ?? ''}\r\n`;
      client.write(responseHead(statusCode, headersOf(rawHeaders as Buffer[]), upgrade));
      if (head.length > 0) upstream.write(head);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.once('close', () => { client.destroy(); finish({ status: statusCode }); });
      client.once('close', () => upstream.destroy());
      upstream.pipe(client);
      client.pipe(upstream);
    },
    onError(err) {
      const c = classifyUpstreamError(err as Error & { code?: string });
      if (done) { client.destroy(); return; }
      sendSocketError(client, c.status, `${r.what()} ${c.text}`);
      finish({ status: c.status, upstreamError: { reason: c.reason, text: c.text } });
    },
  };
}

/** A raw HTTP/1.1 response head for a socket that has no ServerResponse. */
function responseHead(status: number, headers: readonly string[], extra: string): string {
  let text = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${extra}`;
  for (let i = 0; i < headers.length; i += 2) text += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return text + '\r\n';
}
