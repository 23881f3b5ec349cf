// OAuth2 client credentials injection (auth secretType connectors.cpaas.io/oauth2-client-credentials)
// against a real token endpoint written here: it checks the grant (RFC 6749 section 4.4) and
// the client authentication (Basic header or body), counts token requests, issues tokens
// that expire, and refuses wrong client secrets. The tool behind the proxy accepts only
// tokens the endpoint issued and not revoked. Proves caching, single flight under 50
// concurrent requests, refresh at expiry, one retry after a 401, 502 with the OAuth2 error
// and no client secret anywhere, and the token endpoint reached with the Connector's CA trust.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request, type Reply } from './support/http';
import { basic, startProxy, type ProxyProcess } from './support/proxy';
import { readBody, startUpstream, type Upstream } from './support/upstream';
import { TestCa, startHttpsTool, type HttpsTool } from './support/test-ca';

const CLIENT = basic('anyone', 'good-token-123');
const SECRET = `cs-${randomBytes(12).toString('hex')}`;
const WRONG = `wrong-${randomBytes(12).toString('hex')}`;

interface TokenRequest {
  readonly clientID: string;
  readonly via: 'basic' | 'body' | 'none';
  readonly form: URLSearchParams;
}

/** The token endpoint's state: who may get tokens, which are live, what was asked. */
class Issuer {
  readonly requests: TokenRequest[] = [];
  /** token → expiry (ms since epoch). */
  readonly live = new Map<string, number>();
  expiresIn = 3600;
  delayMs = 0;
  /** Echo the presented secret in error_description (a careless endpoint). */
  echo = false;
  /** False: issued tokens are refused by the tool anyway. */
  issueValid = true;
  private n = 0;

  count(clientID: string): number {
    return this.requests.filter((r) => r.clientID === clientID).length;
  }

  readonly handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = (await readBody(req)).toString();
    const form = new URLSearchParams(body);
    let id = form.get('client_id') ?? '';
    let secret = form.get('client_secret') ?? '';
    let via: TokenRequest['via'] = id ? 'body' : 'none';
    const b = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (b !== undefined) {
      const [u, p] = Buffer.from(b, 'base64').toString().split(/:(.*)/s);
      id = decodeURIComponent(u!.replace(/\+/g, ' '));
      secret = decodeURIComponent(p!.replace(/\+/g, ' '));
      via = 'basic';
    }
    this.requests.push({ clientID: id, via, form });
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    const json = (status: number, o: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(o));
    };
    if (req.method !== 'POST' || req.headers['content-type'] !== 'application/x-www-form-urlencoded' || form.get('grant_type') !== 'client_credentials') {
      return json(400, { error: 'invalid_request', error_description: 'expected a client_credentials grant' });
    }
    // Each client ID says which client authentication it registered.
    const method = id.startsWith('body-') ? 'body' : 'basic';
    if (secret !== SECRET || via !== method) {
      return json(401, { error: 'invalid_client', error_description: this.echo ? `bad client secret ${secret}` : 'client authentication failed' });
    }
    const token = `at-${id}-${++this.n}-${randomBytes(6).toString('hex')}`;
    if (this.issueValid) this.live.set(token, Date.now() + this.expiresIn * 1000);
    json(200, { access_token: token, token_type: 'Bearer', expires_in: this.expiresIn, scope: form.get('scope') ?? undefined });
  };

  /** The tool: a valid Bearer token or 401. */
  readonly tool = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const exp = this.live.get(token);
    if (exp === undefined || exp < Date.now()) {
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"', 'content-type': 'text/plain' });
      res.end('token rejected\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, path: req.url }));
  };
}

let issuer: Issuer;
let endpoint: Upstream;
let tool: Upstream;
let ca: TestCa;
let httpsEndpoint: HttpsTool;
let proxy: ProxyProcess;

const CLASS = `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata: {name: oauth-tool}
spec:
  proxy: {}
  address: {type: string}
  params:
    - {name: clientAuthMethod, type: string, default: basic, description: "basic (client_secret_basic) or body (client_secret_post)"}
  auth:
    types:
      - {name: oauth2, secretType: connectors.cpaas.io/oauth2-client-credentials}
`;

/** A class for one identity provider: the token URL and client authentication are its param defaults. */
const fixedClass = (tokenURL: string): string => CLASS.replace('name: oauth-tool', 'name: oauth-fixed')
  .replace('default: basic,', 'default: body,')
  .replace('  params:\n', `  params:\n    - {name: tokenURL, type: string, default: "${tokenURL}"}\n`);

function connector(name: string, o: { data: Record<string, string>; params?: Record<string, string>; ca?: string }): string {
  const params = Object.entries(o.params ?? {}).map(([k, v]) => `{name: ${k}, value: ${JSON.stringify(v)}}`).join(', ');
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: team}
spec:
  connectorClassName: oauth-tool
  address: ${tool.origin}/api
  auth: {name: oauth2, secretRef: {name: ${name}-oauth}}${params ? `\n  params: [${params}]` : ''}${o.ca ? `\n  caCertSecretRef: {name: ${o.ca}}` : ''}
---
apiVersion: v1
kind: Secret
metadata: {name: ${name}-oauth, namespace: team}
type: connectors.cpaas.io/oauth2-client-credentials
stringData:
${Object.entries(o.data).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}
`;
}

const creds = (clientID: string, extra: Record<string, string> = {}): Record<string, string> =>
  ({ clientID, clientSecret: SECRET, tokenURL: `${endpoint.origin}/oauth/token`, ...extra });

function call(name: string, path = '/things'): Promise<Reply> {
  return request(proxy.url(path), { headers: { host: `c-${name}.team.proxy.test:${proxy.port}`, authorization: CLIENT } });
}

before(async () => {
  issuer = new Issuer();
  endpoint = await startUpstream((req, res) => void issuer.handle(req, res));
  tool = await startUpstream(issuer.tool);
  ca = await TestCa.create('oauth2-test-ca');
  httpsEndpoint = await startHttpsTool(await ca.issue(['localhost']), (req, res) => void issuer.handle(req, res));
  const caSecret = `apiVersion: v1
kind: Secret
metadata: {name: idp-ca, namespace: team}
type: Opaque
stringData:
  ca.crt: |
${ca.cert.trim().split('\n').map((l) => '    ' + l).join('\n')}
`;
  const httpsURL = `https://localhost:${httpsEndpoint.port}/oauth/token`;
  proxy = await startProxy({
    manifests: {
      'class.yaml': CLASS,
      'basic.yaml': connector('basic', { data: creds('basic-client', { scopes: 'read, write', audience: 'https://tool.example' }) }),
      'cache.yaml': connector('cache', { data: creds('cache-client') }),
      'flight.yaml': connector('flight', { data: creds('flight-client') }),
      'expiry.yaml': connector('expiry', { data: creds('expiry-client') }),
      'retry.yaml': connector('retry', { data: creds('retry-client') }),
      'body.yaml': connector('body', { data: creds('body-client'), params: { clientAuthMethod: 'body' } }),
      'wrong.yaml': connector('wrong', { data: { ...creds('wrong-client'), clientSecret: WRONG } }),
      'echo.yaml': connector('echo', { data: { ...creds('echo-client'), clientSecret: WRONG } }),
      'mismatch.yaml': connector('mismatch', { data: creds('basic-mismatch'), params: { clientAuthMethod: 'body' } }),
      'nourl.yaml': connector('nourl', { data: { clientID: 'x', clientSecret: SECRET } }),
      'paramurl.yaml': connector('paramurl', { data: { clientID: 'param-client', clientSecret: SECRET }, params: { tokenURL: `${endpoint.origin}/oauth/token` } }),
      'tls.yaml': connector('tls', { data: creds('tls-client', { tokenURL: httpsURL }), ca: 'idp-ca' }) + '---\n' + caSecret,
      'fixed.yaml': fixedClass(`${endpoint.origin}/oauth/token`) + '---\n' +
        connector('fixed', { data: { clientID: 'body-fixed', clientSecret: SECRET } }).replace('connectorClassName: oauth-tool', 'connectorClassName: oauth-fixed'),
      'tlsnoca.yaml': connector('tlsnoca', { data: creds('tlsnoca-client', { tokenURL: httpsURL }) }),
    },
    args: ['--enable-custom-ca-certs'],
  });
});

after(async () => {
  await proxy?.stop();
  await Promise.all([endpoint?.close(), tool?.close(), httpsEndpoint?.close()]);
  ca?.remove();
});

describe('OAuth2 client credentials', () => {
  test('Basic client authentication: the grant carries scope and audience, the tool gets the Bearer token', async () => {
    const r = await call('basic', '/things?q=1');
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text) as { token: string; path: string };
    assert.match(body.token, /^at-basic-client-/);
    assert.equal(body.path, '/api/things?q=1');
    const t = issuer.requests.find((x) => x.clientID === 'basic-client')!;
    assert.equal(t.via, 'basic');
    assert.equal(t.form.get('grant_type'), 'client_credentials');
    assert.equal(t.form.get('scope'), 'read write');
    assert.equal(t.form.get('audience'), 'https://tool.example');
    assert.equal(t.form.get('client_secret'), null, 'the secret is not also in the body');
  });

  test('body client authentication when the Connector (or class) param says so', async () => {
    const r = await call('body');
    assert.equal(r.status, 200, r.text);
    const t = issuer.requests.find((x) => x.clientID === 'body-client')!;
    assert.equal(t.via, 'body');
    assert.equal(t.form.get('client_secret'), SECRET);
  });

  test('the token is cached: 20 requests, one token request', async () => {
    for (let i = 0; i < 20; i++) assert.equal((await call('cache')).status, 200);
    assert.equal(issuer.count('cache-client'), 1);
  });

  test('single flight: 50 concurrent requests on a cold cache, one token request', async () => {
    issuer.delayMs = 300;
    try {
      const replies = await Promise.all(Array.from({ length: 50 }, () => call('flight')));
      assert.deepEqual(replies.map((r) => r.status), Array(50).fill(200));
      assert.equal(new Set(replies.map((r) => (JSON.parse(r.text) as { token: string }).token)).size, 1, 'all used the same token');
    } finally {
      issuer.delayMs = 0;
    }
    assert.equal(issuer.count('flight-client'), 1);
  });

  test('a token is refreshed shortly before it expires', async () => {
    issuer.expiresIn = 2;
    try {
      const first = JSON.parse((await call('expiry')).text) as { token: string };
      assert.equal((await call('expiry')).status, 200);
      assert.equal(issuer.count('expiry-client'), 1, 'cached while valid');
      await new Promise((r) => setTimeout(r, 2000));
      const r = await call('expiry');
      assert.equal(r.status, 200, r.text);
      assert.notEqual((JSON.parse(r.text) as { token: string }).token, first.token);
      assert.equal(issuer.count('expiry-client'), 2);
    } finally {
      issuer.expiresIn = 3600;
    }
  });

  test('the tool answers 401 (token revoked): a new token is fetched and the request sent once more', async () => {
    const first = JSON.parse((await call('retry')).text) as { token: string };
    issuer.live.delete(first.token);
    const r = await call('retry', '/again');
    assert.equal(r.status, 200, r.text);
    const second = JSON.parse(r.text) as { token: string; path: string };
    assert.notEqual(second.token, first.token);
    assert.equal(second.path, '/api/again');
    assert.equal(issuer.count('retry-client'), 2);
    // Revoked again and the new token refused too: one retry only, then the 401 is relayed.
    issuer.live.clear();
    issuer.issueValid = false;
    const before = issuer.count('retry-client');
    try {
      const bad = await call('retry');
      assert.equal(bad.status, 401);
      assert.equal(bad.text, 'token rejected\n');
      assert.equal(issuer.count('retry-client'), before + 1, 'one refresh, not a loop');
    } finally {
      issuer.issueValid = true;
    }
  });

  test('a wrong client secret: 502 with the OAuth2 error, never the secret', async () => {
    const r = await call('wrong');
    assert.equal(r.status, 502);
    assert.match(r.text, /connector team\/wrong \(class "oauth-tool", auth type "oauth2"\)/);
    assert.match(r.text, /invalid_client: client authentication failed/);
    assert.ok(!r.text.includes(WRONG) && !r.text.includes(SECRET));
  });

  test('an endpoint that echoes the secret in error_description: hidden in the 502', async () => {
    issuer.echo = true;
    try {
      const r = await call('echo');
      assert.equal(r.status, 502);
      assert.match(r.text, /invalid_client: bad client secret \[hidden\]/);
      assert.ok(!r.text.includes(WRONG));
    } finally {
      issuer.echo = false;
    }
  });

  test('the configured client authentication is the one used (a Basic-only client sent via body is refused)', async () => {
    const r = await call('mismatch');
    assert.equal(r.status, 502);
    assert.match(r.text, /invalid_client/);
    assert.equal(issuer.requests.find((x) => x.clientID === 'basic-mismatch')?.via, 'body');
  });

  test('token URL from the Connector param or the class param default; none anywhere is a clear 502', async () => {
    assert.equal((await call('paramurl')).status, 200);
    const fixed = await call('fixed');
    assert.equal(fixed.status, 200, fixed.text);
    assert.equal(issuer.requests.find((x) => x.clientID === 'body-fixed')?.via, 'body', 'the class default client authentication');
    const r = await call('nourl');
    assert.equal(r.status, 502);
    assert.match(r.text, /no token URL: set Secret key "tokenURL", or param "tokenURL"/);
  });

  test('an HTTPS token endpoint with a private CA is reached with the Connector\'s CA trust', async () => {
    const ok = await call('tls');
    assert.equal(ok.status, 200, ok.text);
    assert.match((JSON.parse(ok.text) as { token: string }).token, /^at-tls-client-/);
    const bad = await call('tlsnoca');
    assert.equal(bad.status, 502);
    assert.match(bad.text, /token endpoint https:\/\/localhost:\d+\/oauth\/token presented a TLS certificate that is not trusted/);
  });

  test('no client secret, token or Bearer value in the logs', () => {
    const logs = proxy.logs();
    assert.ok(!logs.includes(SECRET) && !logs.includes(WRONG), 'no client secret');
    assert.ok(!logs.includes('at-'), 'no access token');
    assert.ok(!logs.includes('good-token-123'));
  });
});
