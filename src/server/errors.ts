// Error answers to clients: a status and one plain sentence. Never a stack trace, never a
// credential; messages are built from names and addresses only.
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { certificateProblem } from '../tls/ca-trust';

export function sendError(res: ServerResponse, status: number, message: string, headers?: Readonly<Record<string, string>>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `connectors-proxy: ${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

/** The same for a raw socket (an Upgrade request that never got an HTTP response object). */
export function sendSocketError(socket: Duplex, status: number, message: string, headers?: Readonly<Record<string, string>>): void {
  const body = `connectors-proxy: ${message}\n`;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  for (const [k, v] of Object.entries(headers ?? {})) head += `${k}: ${v}\r\n`;
  if (socket.writable) socket.end(head + '\r\n' + body);
  else socket.destroy();
}

const BAD_RESPONSE = { status: 502, reason: 'bad_response', text: 'sent an invalid HTTP response' } as const;

/** The code of the error a relay reports for a body that does not decode as its Content-Encoding says. */
export const BAD_CONTENT_ENCODING = 'BAD_CONTENT_ENCODING';

/** Maps an upstream failure (undici error codes, socket errors) to a status and a reason. */
export function classifyUpstreamError(err: Error & { code?: string }): { status: 502 | 504; reason: string; text: string } {
  switch (err.code) {
    case 'UND_ERR_HEADERS_TIMEOUT': return { status: 504, reason: 'headers_timeout', text: 'did not send response headers in time' };
    case 'UND_ERR_BODY_TIMEOUT': return { status: 504, reason: 'body_timeout', text: 'stopped sending the response body' };
    case 'UND_ERR_CONNECT_TIMEOUT': return { status: 504, reason: 'connect_timeout', text: 'did not accept the connection in time' };
    case 'ECONNREFUSED': return { status: 502, reason: 'connect_refused', text: 'refused the connection' };
    case 'ENOTFOUND': case 'EAI_AGAIN': return { status: 502, reason: 'dns', text: 'host name could not be resolved' };
    case 'ECONNRESET': case 'UND_ERR_SOCKET': case 'EPIPE': return { status: 502, reason: 'reset', text: 'closed the connection unexpectedly' };
    case 'HPE_INVALID_CONSTANT': case 'HPE_INVALID_HEADER_TOKEN': case 'HPE_INVALID_VERSION': case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_CHUNK_SIZE': case 'HPE_UNEXPECTED_CONTENT_LENGTH': case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      return BAD_RESPONSE;
    case BAD_CONTENT_ENCODING: return { status: 502, reason: 'bad_response', text: 'sent a body that does not decode as its Content-Encoding says' };
    default: {
      // undici's parser errors do not always carry a code (garbage instead of a status line).
      if (err.name === 'HTTPParserError' || err.code?.startsWith('HPE_')) return BAD_RESPONSE;
      const cert = certificateProblem(err.code);
      if (cert !== undefined) return { status: 502, reason: 'tls_certificate', text: cert };
      if (err.code?.startsWith('ERR_TLS') || err.code?.includes('CERT')) return { status: 502, reason: 'tls', text: `TLS failed (${err.code})` };
      return { status: 502, reason: 'error', text: `failed (${err.code ?? err.name})` };
    }
  }
}
