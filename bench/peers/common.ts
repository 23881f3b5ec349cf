// What the peer proxies share: their command line and how they announce their port.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface PeerArgs {
  /** `http://127.0.0.1:<port>`: where every request goes. */
  readonly upstream: string;
  /** The fixed `Authorization` value injected into every upstream request. */
  readonly authorization: string;
}

export function peerArgs(argv: readonly string[] = process.argv.slice(2)): PeerArgs {
  const [upstream, authorization] = argv;
  if (upstream === undefined || authorization === undefined) {
    process.stderr.write('usage: node <peer>.js <upstream origin> <authorization header value>\n');
    process.exit(2);
  }
  return { upstream, authorization };
}

/** Listens on a free loopback port and prints `{"port":N}` on stdout for the bench runner. */
export function listenAndAnnounce(server: Server): void {
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

/** Hop-by-hop headers (RFC 9110 section 7.6.1): never forwarded in either direction. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);
