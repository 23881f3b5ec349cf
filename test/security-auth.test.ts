// Auth bypass, header injection and credential confinement against the real proxy binary.
// Team's token tries every path, host and absolute-form trick to reach the other team's
// Connector (whose tool is a separate recording upstream that must stay untouched); Secret
// and policy values with CR, LF or NUL must fail the request before a byte is sent; and no
// token or Secret value may appear upstream where it does not belong, in a log line, a
// metric or an error body.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { basic, connectorManifests, startProxy, type ProxyProcess } from './support/proxy';
import { rawExchange, startRecordingUpstream, type RawReply, type RecordingUpstream } from './support/raw';
import { request, type Reply } from './support/http';

const TEAM = 'good-token-123';
const OTHER = 'other-token-456';
const TEAM_PW = 'team-secret-pw';
const OTHER_PW = 'other-secret-pw';
const BEARER = 'team-bearer-secret';
const INJECT = 'Injected: yes';
/** Every value that must never show up in logs, metrics or error bodies. */
const SECRETS = [TEAM, OTHER, TEAM_PW, OTHER_PW, BEARER, Buffer.from(`u:${TEAM_PW}`).toString('base64'), Buffer.from(`u:${OTHER_PW}`).toString('base64'), 'policy-secret-value'];

/** One class, three Rego auth types that put a Secret value into a header or the query. */
function injectionManifests(address: string): string {
  const type = (name: string, position: string): string => `      - name: ${name}
        secretType: Opaque
        params:
          - name: value
            type: string
        generator:
          rego: |
            package proxy
            auth = {"position": "${position}", "auth": {"X-Key": input.value}}`;
  const connector = (name: string, authName: string, value: string): string => `---
apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: ${name}, namespace: team}
spec:
  connectorClassName: cls-inject
  address: ${address}
  auth: {name: ${authName}, secretRef: {name: ${name}-secret}}
---
apiVersion: v1
kind: Secret
metadata: {name: ${name}-secret, namespace: team}
type: Opaque
stringData:
  value: ${JSON.stringify(value)}
`;
  return `apiVersion: connectors.alauda.io/v1alpha1
kind: ConnectorClass
metadata:
  name: cls-inject
  annotations: {connectors.cpaas.io/proxy-resolver: path}
spec:
  proxy: {}
  address: {type: string}
  auth:
    types:
${type('header', 'header')}
${type('query', 'query')}
${connector('rego-header-crlf', 'header', `policy-secret-value\r\n${INJECT}`)}${connector('rego-header-nul', 'header', 'policy-secret-value\u0000x')}${connector('rego-header-lf', 'header', `policy-secret-value\n${INJECT}`)}${connector('rego-query-crlf', 'query', `policy-secret-value\r\n${INJECT}`)}${connector('rego-ok', 'header', 'policy-secret-value')}`;
}

describe('auth bypass, header injection and credential confinement', () => {
  let up: RecordingUpstream;
  let otherUp: RecordingUpstream;
  let proxy: ProxyProcess;
  /** Every answer the tests got: none may carry a secret. */
  const replies: Array<Reply | RawReply> = [];
  const get = async (path: string, headers: Record<string, string> = { authorization: `Bearer ${TEAM}` }): Promise<Reply> => {
    const r = await request(proxy.url(path), { headers });
    replies.push(r);
    return r;
  };
  const raw = async (bytes: string): Promise<RawReply> => {
    const r = await rawExchange(proxy.port, bytes, 1000);
    replies.push(r);
    return r;
  };
  /** Requests the other team's tool got on purpose (a forward-proxy target without credentials). */
  let otherExpected = 0;
  const otherUntouched = (what: string): void => assert.equal(otherUp.requests.length, otherExpected, `${what}: the other team's tool was reached: ${otherUp.raw()}`);

  before(async () => {
    up = await startRecordingUpstream((req, res) => {
      if (req.url?.includes('/redirect')) res.writeHead(302, { location: `${otherUp.origin}/landing` }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ url: req.url }));
    });
    otherUp = await startRecordingUpstream();
    const user = { username: 'u' };
    proxy = await startProxy({
      manifests: {
        'tool.yaml': connectorManifests({ address: `${up.origin}/base`, name: 'tool', resolver: 'path', secretData: { ...user, password: TEAM_PW } }),
        'api.yaml': connectorManifests({ address: up.origin, name: 'api', secretType: 'connectors.cpaas.io/bearer-token', secretData: { token: BEARER } }),
        'bad-bearer.yaml': connectorManifests({ address: up.origin, name: 'badbearer', resolver: 'path', secretType: 'connectors.cpaas.io/bearer-token', secretData: { token: `abc\r\n${INJECT}` } }),
        'nul-bearer.yaml': connectorManifests({ address: up.origin, name: 'nulbearer', resolver: 'path', secretType: 'connectors.cpaas.io/bearer-token', secretData: { token: 'abc\u0000def' } }),
        'other.yaml': connectorManifests({ address: `${otherUp.origin}/base`, namespace: 'other', name: 'secret', resolver: 'path', secretData: { ...user, password: OTHER_PW } }),
        'other-host.yaml': connectorManifests({ address: otherUp.origin, namespace: 'other', name: 'hosted', secretData: { ...user, password: OTHER_PW } }),
        'inject.yaml': injectionManifests(up.origin),
      },
    });
  });
  after(async () => {
    await proxy?.stop();
    await up?.close();
    await otherUp?.close();
  });

  test('path tricks never reach another Connector nor skip the check', async () => {
    const refused: Array<[string, number]> = [
      ['/namespaces/team/connectors/tool/../../../other/connectors/secret/x', 400],
      ['/namespaces/team/connectors/tool/x/../../../../other/connectors/secret/x', 400],
      ['/namespaces/team/connectors/tool/%2e%2e/%2e%2e/%2e%2e/other/connectors/secret/x', 400],
      ['/namespaces/team/connectors/tool/%2E%2e/x', 400],
      ['/namespaces/team/connectors/tool/.%2e/x', 400],
      ['/namespaces/team/connectors/tool/%2e/x', 400],
      // Encoded slashes and backslashes around dots: a tool that decodes them climbs out of the prefix.
      ['/namespaces/team/connectors/tool/%2e%2e%2f%2e%2e%2fother', 400],
      ['/namespaces/team/connectors/tool/..%2F..%2Fother', 400],
      ['/namespaces/team/connectors/tool/..%5c..%5cother', 400],
      ['/namespaces/team/connectors/tool/..\\..\\other', 400],
      // Path parameters: Tomcat and Jetty read `..;x` as `..`.
      ['/namespaces/team/connectors/tool/..;/..;/other', 400],
      ['/namespaces/team/connectors/tool/%2e%2e;jsessionid=1/x', 400],
      // A raw `#` ends the path for a tool that parses the target as a URL.
      ['/namespaces/team/connectors/tool/..#x', 400],
      // Encoded separators inside the prefix are not separators: no such Connector.
      ['/namespaces/team/connectors/tool%2F..%2F..%2Fother%2Fconnectors%2Fsecret/x', 400],
      ['/namespaces/other%2Fconnectors%2Fsecret/connectors/tool/x', 404],
      ['/namespaces/team%2fconnectors/connectors/tool/x', 404],
      ['//namespaces/other/connectors/secret/x', 404],
      ['/namespaces//other/connectors/secret/x', 404],
      ['/namespaces/other//connectors/secret/x', 404],
      ['/namespaces/OTHER/connectors/secret/x', 404],
      ['/Namespaces/other/connectors/secret/x', 404],
      ['/namespaces/other/connectors/secret%00/x', 404],
      // The other team's Connector asked for directly, in both path forms: the check says no.
      ['/namespaces/other/connectors/secret/x', 403],
      ['/v2/namespaces/other/connectors/secret/repo/manifests/latest', 403],
      ['/namespaces/other/connectors/secret', 403],
    ];
    for (const [path, status] of refused) {
      const r = await get(path);
      assert.equal(r.status, status, `${path}: ${r.status} ${r.text}`);
      otherUntouched(path);
    }
    // Dots and encoded slashes where they are harmless still pass: query, names, longer segments.
    for (const path of ['/namespaces/team/connectors/tool/a?next=/../../x', '/namespaces/team/connectors/tool/v1.2..3/file..txt', '/namespaces/team/connectors/tool/a%2Fb', '/namespaces/team/connectors/tool/.well-known/x']) {
      const r = await get(path);
      assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
    }
    assert.ok(up.requests.every((q) => q.url.startsWith('/base/')), 'every request stayed under the address prefix');
  });

  test('Host header games: case, trailing dot, ports, look-alikes, duplicates', async () => {
    const host = async (h: string, token = TEAM): Promise<RawReply> => raw(`GET /x HTTP/1.1\r\nHost: ${h}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
    for (const h of ['c-api.team.proxy.test', 'C-API.TEAM.PROXY.TEST', 'c-api.team.proxy.test.', 'c-api.team.proxy.test:8080', 'C-Api.Team.Proxy.Test.:1']) {
      const r = await host(h);
      assert.equal(r.statuses[0], 200, `${h}: ${r.text}`);
    }
    for (const h of ['c-hosted.other.proxy.test', 'C-HOSTED.OTHER.PROXY.TEST.', 'c-hosted.other.proxy.test:80']) {
      const r = await host(h);
      assert.equal(r.statuses[0], 403, `${h}: ${r.text}`);
    }
    // Not the proxy's domain, or not a Connector name: no Connector, whatever follows.
    for (const h of ['c-hosted.other.proxy.test.evil.example', 'c-hosted.other.proxy.testx', 'x.c-hosted.other.proxy.test', 'c-hosted.other..proxy.test', 'c-.other.proxy.test', 'c-hosted.other.proxy.test:80:80', 'c-hosted.other.proxy.test:aa', '[c-hosted.other.proxy.test]']) {
      const r = await host(h);
      assert.ok(r.statuses[0] === 404 || r.statuses[0] === 400, `${h}: ${r.text}`);
    }
    // Two Host headers are ambiguous (RFC 9112 §3.2): refused, whichever order.
    for (const pair of [['c-api.team.proxy.test', 'c-hosted.other.proxy.test'], ['c-hosted.other.proxy.test', 'c-api.team.proxy.test']]) {
      const r = await raw(`GET /x HTTP/1.1\r\nHost: ${pair[0]}\r\nHost: ${pair[1]}\r\nAuthorization: Bearer ${TEAM}\r\nConnection: close\r\n\r\n`);
      assert.equal(r.statuses[0], 400, `${pair}: ${r.text}`);
    }
    otherUntouched('host games');
  });

  test('absolute-form URIs in reverse mode: the Authorization token is no proxy credential; the target decides, not Host', async () => {
    // A reverse-mode client token in Authorization does not open forward mode.
    let r = await raw(`GET http://c-hosted.other.proxy.test/x HTTP/1.1\r\nHost: c-api.team.proxy.test\r\nAuthorization: Bearer ${TEAM}\r\nConnection: close\r\n\r\n`);
    assert.equal(r.statuses[0], 407, r.text);
    r = await raw(`GET ${otherUp.origin}/base/x HTTP/1.1\r\nHost: c-api.team.proxy.test\r\nAuthorization: Bearer ${TEAM}\r\nConnection: close\r\n\r\n`);
    assert.equal(r.statuses[0], 407, r.text);
    otherUntouched('absolute form without proxy credentials');
    // Listing the other team's Connector with team's token: 403, nothing sent.
    const listOther = 'Basic ' + Buffer.from(`other/secret:${TEAM}`).toString('base64');
    r = await raw(`GET ${otherUp.origin}/base/x HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${listOther}\r\nConnection: close\r\n\r\n`);
    assert.equal(r.statuses[0], 403, r.text);
    otherUntouched('forward mode listing a Connector the token may not use');
    // Team's Connector listed, the other tool as target (Host says team's tool): the other
    // tool gets the request as the client wrote it, without any Connector credential.
    const listTeam = 'Basic ' + Buffer.from(`team/tool:${TEAM}`).toString('base64');
    r = await raw(`GET ${otherUp.origin}/base/x HTTP/1.1\r\nHost: ${up.origin.slice(7)}\r\nProxy-Authorization: ${listTeam}\r\nConnection: close\r\n\r\n`);
    assert.equal(r.statuses[0], 200, r.text);
    assert.equal(otherUp.requests.length, 1);
    otherExpected = 1;
    const seen = otherUp.raw();
    for (const s of [TEAM, TEAM_PW, OTHER_PW, Buffer.from(`u:${TEAM_PW}`).toString('base64'), Buffer.from(`u:${OTHER_PW}`).toString('base64')]) assert.ok(!seen.includes(s), `the unmatched target got ${s}`);
    assert.ok(!/authorization:/i.test(seen), seen);
    // Prefix look-alikes, dot and encoded-slash climbs on the matching origin: no credentials or refused.
    const r1 = await raw(`GET ${up.origin}/base-evil/x HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${listTeam}\r\nConnection: close\r\n\r\n`);
    assert.equal(r1.statuses[0], 200);
    assert.equal(up.requests.at(-1)!.headers.authorization, undefined, 'a prefix look-alike gets no credentials');
    for (const path of ['/base/../x', '/base/%2e%2e/x', '/base/..%2fx', '/base/..;/x']) {
      const r2 = await raw(`GET ${up.origin}${path} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${listTeam}\r\nConnection: close\r\n\r\n`);
      assert.equal(r2.statuses[0], 400, `${path}: ${r2.text}`);
    }
    const r3 = await raw(`GET http://127.0.0.1:${up.port}@${otherUp.origin.slice(7)}/base/x HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${listTeam}\r\nConnection: close\r\n\r\n`);
    assert.equal(r3.statuses[0], 400, 'user information in the target is refused');
  });

  test('CR, LF or NUL in a Secret or a policy result: 502 naming the Connector, nothing sent', async () => {
    const before = up.requests.length;
    const rawBefore = up.raw().length;
    for (const name of ['badbearer', 'nulbearer', 'rego-header-crlf', 'rego-header-nul', 'rego-header-lf', 'rego-query-crlf']) {
      const r = await get(`/namespaces/team/connectors/${name}/x`);
      assert.equal(r.status, 502, `${name}: ${r.status} ${r.text}`);
      assert.match(r.text, new RegExp(`connector team/${name}`));
      assert.match(r.text, /CR, LF or NUL/);
      assert.ok(!r.text.includes('Injected') && !r.text.includes('policy-secret-value') && !r.text.includes('abc'), r.text);
    }
    assert.equal(up.requests.length, before, 'no request reached the tool');
    assert.ok(!up.raw().slice(rawBefore).includes('Injected'), 'no byte of a split header was sent');
    const ok = await get('/namespaces/team/connectors/rego-ok/x');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(up.requests.at(-1)!.headers['x-key'], 'policy-secret-value');
  });

  test('encoded CR/LF and raw bytes in the path stay encoded or are refused; never a header line upstream', async () => {
    const before = up.raw().length;
    const r = await get('/namespaces/team/connectors/tool/a%0d%0aInjected:%20yes');
    assert.equal(r.status, 200);
    assert.equal(up.requests.at(-1)!.url, '/base/a%0d%0aInjected:%20yes', 'passed as sent, still encoded');
    for (const bytes of ['\u0085', '\u00ff', '\u007f', '\t']) {
      const x = await raw(`GET /namespaces/team/connectors/tool/a${bytes}b HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEAM}\r\nConnection: close\r\n\r\n`);
      assert.ok(x.statuses[0] === 400 || x.statuses[0] === 200, `${JSON.stringify(bytes)}: ${x.text}`);
    }
    assert.ok(!/\r\nInjected/i.test(up.raw().slice(before)), up.raw().slice(before));
  });

  test('redirects are passed back, never followed: the other host gets nothing from the proxy', async () => {
    const r = await get('/namespaces/team/connectors/tool/redirect');
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, `${otherUp.origin}/landing`);
    otherUntouched('redirect');
  });

  test('the client token never reaches a tool; Proxy-Authorization neither', async () => {
    await get('/namespaces/team/connectors/tool/t', { authorization: basic('user', TEAM), 'x-forwarded-for': '1.2.3.4' });
    const seen = up.raw() + otherUp.raw();
    for (const s of [TEAM, OTHER, Buffer.from(`user:${TEAM}`).toString('base64'), Buffer.from(`team/tool:${TEAM}`).toString('base64')]) {
      assert.ok(!seen.includes(s), `a tool received the client token (${s})`);
    }
    assert.ok(!/proxy-authorization/i.test(seen));
  });

  test('no token or Secret value in any log line, metric or error body', async () => {
    const metrics = await request(`http://127.0.0.1:${proxy.opsPort}/metrics`);
    const logs = proxy.logs();
    assert.match(logs, /"msg":"request"/);
    for (const s of SECRETS) {
      assert.ok(!logs.includes(s), `log contains ${s}`);
      assert.ok(!metrics.text.includes(s), `metrics contain ${s}`);
      for (const r of replies) assert.ok(!r.text.includes(s), `an answer contains ${s}: ${r.text}`);
    }
    // Metric labels are names, never paths or values.
    const labels = new Set([...metrics.text.matchAll(/\{([^}]*)\}/g)].flatMap((m) => m[1]!.split(',').map((l) => l.split('=')[0])));
    for (const l of labels) assert.ok(['connector', 'class', 'way', 'code', 'le', 'reason', 'kind', 'source', 'result', 'version', 'type', 'space', 'major', 'minor', 'patch', 'versionNumber', 'status'].includes(l!), `unexpected metric label ${l}`);
  });
});

describe('cross-namespace secretRef', () => {
  const borrow = (address: string): string => `apiVersion: connectors.alauda.io/v1alpha1
kind: Connector
metadata: {name: borrow, namespace: team}
spec:
  connectorClassName: cls-tool
  address: ${address}
  auth: {name: auth, secretRef: {name: tool-secret, namespace: other}}
`;
  let up: RecordingUpstream;
  before(async () => { up = await startRecordingUpstream(); });
  after(async () => { await up?.close(); });

  for (const allowed of [false, true]) {
    test(allowed ? 'with --allow-cross-namespace-secrets the Secret of another namespace is used' : 'a Connector may not use a Secret of another namespace by default: 502 saying why, nothing sent', async () => {
      const proxy = await startProxy({
        manifests: {
          // other/tool brings class cls-tool and Secret other/tool-secret; team/borrow points at that Secret.
          'other.yaml': connectorManifests({ address: up.origin, namespace: 'other', name: 'tool', resolver: 'path', secretData: { username: 'u', password: OTHER_PW } }),
          'borrow.yaml': borrow(up.origin),
        },
        args: allowed ? ['--allow-cross-namespace-secrets'] : [],
      });
      try {
        const r = await request(proxy.url('/namespaces/team/connectors/borrow/x'), { headers: { authorization: `Bearer ${TEAM}` } });
        if (allowed) {
          assert.equal(r.status, 200, r.text);
          assert.equal(up.requests.at(-1)!.headers.authorization, basic('u', OTHER_PW));
        } else {
          assert.equal(r.status, 502, r.text);
          assert.match(r.text, /connector team\/borrow .*Secret other\/tool-secret is in another namespace .*--allow-cross-namespace-secrets/);
          assert.equal(up.requests.length, 0);
          assert.ok(!proxy.logs().includes(OTHER_PW) && !r.text.includes(OTHER_PW));
        }
      } finally {
        await proxy.stop();
      }
    });
  }
});
