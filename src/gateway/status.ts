// The gateway's ErrorHandler: refusals and upstream failures as a Kubernetes `Status`
// (connector_api.mdx: "the returned data structure should conform to the k8s status"), with
// the reasons apimachinery gives those codes. Messages name things, never a credential.
import type { ServerResponse } from 'node:http';

const REASONS: ReadonlyMap<number, string> = new Map([
  [400, 'BadRequest'], [401, 'Unauthorized'], [403, 'Forbidden'], [404, 'NotFound'], [405, 'MethodNotAllowed'],
  [406, 'NotAcceptable'], [409, 'Conflict'], [413, 'RequestEntityTooLarge'], [415, 'UnsupportedMediaType'],
  [422, 'Invalid'], [429, 'TooManyRequests'], [503, 'ServiceUnavailable'], [504, 'Timeout'],
]);

/** apimachinery's reason for `code` (NewGenericServerResponse): other 5xx are InternalError. */
export function statusReason(code: number): string {
  return REASONS.get(code) ?? (code >= 500 ? 'InternalError' : code >= 400 ? 'BadRequest' : '');
}

/** The body of a failed request: `{"kind":"Status","apiVersion":"v1",...,"status":"Failure","message","reason","code"}`. */
export function statusBody(code: number, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: statusReason(code), code }) + '\n';
}

export function sendStatus(res: ServerResponse, code: number, message: string, headers?: Readonly<Record<string, string>>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = statusBody(code, message);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}
