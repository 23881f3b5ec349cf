// Tables for the pure parts of issue 17: the host names Pods use for c-<name> (the suffix list
// src/server/resolve.ts takes), the desired c-<name> Service, feature flag precedence and
// parsing (module and CLI), and ExecCredential parsing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from '../src/server/resolve';
import { desiredService, isManagedService, podHostSuffixes, proxyTarget, serviceNameFor } from '../src/cluster/connector-services';
import { FLAG_DEFINITIONS, FeatureFlags, flagEnvVar, parseFlagValue } from '../src/flags/feature-flags';
import { parseExecCredential } from '../src/kube/exec-credentials';
import { parseConfig } from '../src/config';
import { classProxyAddress } from '../src/status/proxy-address';
import type { Connector, ConnectorClass } from '../src/types';

describe('names Pods use for c-<name>', () => {
  test('podHostSuffixes: the resolver domain, svc.<cluster domain>, svc and none, longest first, without duplicates', () => {
    assert.deepEqual(podHostSuffixes('svc.cluster.local', 'cluster.local'), ['svc.cluster.local', 'svc', '']);
    assert.deepEqual(podHostSuffixes('proxy.example.com', 'corp.internal'), ['proxy.example.com', 'svc.corp.internal', 'svc', '']);
    assert.deepEqual(podHostSuffixes('.SVC.Cluster.Local.', 'cluster.local'), ['svc.cluster.local', 'svc', '']);
  });

  test('Resolver with those suffixes: every form and port resolves to the same Connector; other hosts do not', () => {
    const r = new Resolver('svc.cluster.local', podHostSuffixes('svc.cluster.local', 'cluster.local'));
    for (const base of ['c-git.team', 'c-git.team.svc', 'c-git.team.svc.cluster.local', 'c-git.team.svc.cluster.local.', 'C-Git.TEAM.Svc']) {
      for (const host of [base, `${base}:80`, `${base}:8080`]) assert.deepEqual(r.connectorHost(host), { namespace: 'team', name: 'git' }, host);
    }
    // A Connector in a namespace called "svc" is still reachable by its full name.
    assert.deepEqual(r.connectorHost('c-x.svc.svc.cluster.local'), { namespace: 'svc', name: 'x' });
    assert.deepEqual(r.connectorHost('c-x.svc'), { namespace: 'svc', name: 'x' });
    for (const h of ['git.team.svc', 'c-git', 'c-git.team.svc.evil.com:80', 'c-git.team:aa', 'connectors-proxy-service.connectors-system.svc', 'c-.team.svc']) {
      assert.equal(r.connectorHost(h), undefined, h);
    }
    // Without the suffixes (embedded mode) only the resolver domain counts.
    assert.equal(new Resolver('svc.cluster.local').connectorHost('c-git.team.svc'), undefined);
  });
});

describe('the c-<name> Service', () => {
  const o = { namespace: 'connectors-system', proxyService: 'connectors-proxy-service', clusterDomain: 'cluster.local' };
  const cls = (proxy: ConnectorClass['spec']['proxy']): ConnectorClass => ({ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'ConnectorClass', metadata: { name: 'k' }, spec: { proxy } });
  const conn = (name: string): Connector => ({ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name, namespace: 'team', uid: 'u-1' }, spec: { connectorClassName: 'k', address: 'https://x' } });

  test('names: a DNS label of at most 63 characters, else none (path form only)', () => {
    assert.equal(serviceNameFor('git'), 'c-git');
    assert.equal(serviceNameFor('a'.repeat(61)), `c-${'a'.repeat(61)}`);
    assert.equal(serviceNameFor('a'.repeat(62)), undefined);
    assert.equal(serviceNameFor('my.dotted'), undefined);
  });

  test('target: spec.proxy.ref (namespace defaulting to the proxy\'s), else the proxy\'s own Service; the class address agrees', () => {
    assert.deepEqual(proxyTarget(cls({ ref: { kind: 'Service', name: 'connectors-proxy-service', namespace: 'connectors-system' } }), o), { namespace: 'connectors-system', name: 'connectors-proxy-service' });
    assert.deepEqual(proxyTarget(cls({ ref: { name: 'custom' } }), o), { namespace: 'connectors-system', name: 'custom' });
    assert.deepEqual(proxyTarget(cls({ uri: 'http://whatever' }), o), { namespace: 'connectors-system', name: 'connectors-proxy-service' });
    assert.equal(classProxyAddress(cls({ ref: { name: 'connectors-proxy-service', namespace: 'connectors-system' } }), o), 'http://connectors-proxy-service.connectors-system.svc.cluster.local');
    assert.equal(classProxyAddress(cls({ ref: { name: 'p', namespace: 'x' }, uri: '/prefix' }), o), 'http://p.x.svc.cluster.local/prefix');
    assert.equal(classProxyAddress(cls({ uri: 'https://proxy.example.com' }), o), 'https://proxy.example.com');
    assert.equal(classProxyAddress(cls(undefined), o), undefined);
  });

  test('desired: ExternalName to the target FQDN, ports copied, labels, owner reference; none without spec.proxy or a valid name', () => {
    const want = desiredService(conn('git'), cls({ ref: { name: 'connectors-proxy-service' } }), o, [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 'http' }])!;
    assert.equal(want.metadata.name, 'c-git');
    assert.equal(want.metadata.namespace, 'team');
    assert.deepEqual(want.spec, { type: 'ExternalName', externalName: 'connectors-proxy-service.connectors-system.svc.cluster.local', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] });
    assert.equal(want.metadata.labels?.['app.kubernetes.io/managed-by'], 'connectors-proxy');
    assert.deepEqual(want.metadata.ownerReferences, [{ apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', name: 'git', uid: 'u-1', controller: true }]);
    assert.ok(isManagedService(want));
    assert.ok(!isManagedService({ ...want, metadata: { ...want.metadata, labels: {} } }), 'no label: not ours');
    assert.ok(!isManagedService({ ...want, metadata: { ...want.metadata, name: 'c-other' } }), 'owner of another name: not ours');
    assert.equal(desiredService(conn('git'), cls(undefined), o), undefined);
    assert.equal(desiredService(conn('my.dotted'), cls({ uri: 'http://x' }), o), undefined);
  });
});

describe('feature flags', () => {
  test('values: "true"/"false" (case and blanks aside), nothing else; environment variable names', () => {
    assert.equal(parseFlagValue(' TRUE '), true);
    assert.equal(parseFlagValue('false'), false);
    for (const bad of ['yes', '1', '', 'on', 'truee']) assert.equal(parseFlagValue(bad), undefined, bad);
    assert.equal(flagEnvVar('enable-custom-ca-certs'), 'PROXY_ENABLE_CUSTOM_CA_CERTS');
  });

  test('precedence: explicit (cli/env) > ConfigMap > default; a bad value keeps the last good one; a missing ConfigMap restores the defaults; listeners hear changes only', () => {
    const flags = new FeatureFlags({ 'enable-custom-ca-certs': { value: false, origin: 'env' } });
    const heard: string[] = [];
    flags.onChange((n, v) => heard.push(`${n}=${v}`));
    assert.deepEqual([flags.enabled('enable-connector-proxy-permissions'), flags.origin('enable-connector-proxy-permissions')], [false, 'default']);
    flags.applyConfigMap({ 'enable-connector-proxy-permissions': 'true', 'enable-custom-ca-certs': 'true', 'not-a-flag': 'x' }, 'cm');
    assert.deepEqual([flags.enabled('enable-connector-proxy-permissions'), flags.origin('enable-connector-proxy-permissions')], [true, 'configmap']);
    assert.deepEqual([flags.enabled('enable-custom-ca-certs'), flags.origin('enable-custom-ca-certs')], [false, 'env']);
    flags.applyConfigMap({ 'enable-connector-proxy-permissions': 'maybe' }, 'cm');
    assert.equal(flags.enabled('enable-connector-proxy-permissions'), true, 'last good');
    assert.match(flags.snapshot().find((f) => f.name === 'enable-connector-proxy-permissions')!.problem!, /^cm: data\.enable-connector-proxy-permissions: "maybe" is not "true" or "false"; keeping true$/);
    flags.applyConfigMap({ 'enable-connector-proxy-permissions': 'false' }, 'cm');
    flags.applyConfigMap({ 'enable-multi-connector': 'true' }, 'cm');
    flags.applyConfigMap(undefined, 'cm');
    assert.deepEqual(heard, ['enable-connector-proxy-permissions=true', 'enable-connector-proxy-permissions=false', 'enable-multi-connector=true', 'enable-multi-connector=false']);
    assert.equal(flags.snapshot().length, FLAG_DEFINITIONS.length);
  });

  test('CLI: `--<flag>` alone is true, `--<flag>=false` false, the environment variable reads "false" as false; only explicit values are recorded', () => {
    const env = { ...process.env };
    try {
      process.env.PROXY_ENABLE_CUSTOM_CA_CERTS = 'false';
      process.env.PROXY_ENABLE_MULTI_CONNECTOR = 'true';
      const cfg = parseConfig(['--enable-connector-proxy-permissions', '--enable-connector-apis-permissions=false']);
      assert.deepEqual(cfg.featureFlags, {
        'enable-connector-proxy-permissions': { value: true, origin: 'cli' },
        'enable-connector-apis-permissions': { value: false, origin: 'cli' },
        'enable-custom-ca-certs': { value: false, origin: 'env' },
        'enable-multi-connector': { value: true, origin: 'env' },
      });
      assert.equal(cfg.kubernetes.clusterDomain, 'cluster.local');
      assert.equal(parseConfig(['--domain', 'svc.corp.internal']).kubernetes.clusterDomain, 'corp.internal');
      assert.equal(parseConfig(['--domain', 'proxy.example.com', '--cluster-domain', 'Corp.Internal.']).kubernetes.clusterDomain, 'corp.internal');
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
      Object.assign(process.env, env);
    }
  });
});

describe('ExecCredential output', () => {
  const cfg = { apiVersion: 'client.authentication.k8s.io/v1' as const, where: 'kc: users[u].exec', command: 'plugin' };
  test('token, client certificate, expiry', () => {
    assert.deepEqual(parseExecCredential('{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t","expirationTimestamp":"2030-01-02T03:04:05Z"}}', cfg),
      { token: 't', cert: undefined, key: undefined, expiresAt: Date.parse('2030-01-02T03:04:05Z') });
    assert.deepEqual(parseExecCredential('{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"C","clientKeyData":"K"}}', cfg),
      { token: undefined, cert: 'C', key: 'K', expiresAt: undefined });
  });
  test('refusals name the entry and never echo the output', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json secret-abc', /printed something that is not JSON/],
      ['{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"secret-abc"}}', /apiVersion "client\.authentication\.k8s\.io\/v1beta1", the kubeconfig asks for client\.authentication\.k8s\.io\/v1/],
      ['{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{}}', /neither status\.token nor/],
      ['{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientKeyData":"secret-abc"}}', /only one of/],
      ['{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"secret-abc","expirationTimestamp":"soon"}}', /expirationTimestamp that is not an RFC 3339 time/],
    ];
    for (const [out, re] of cases) {
      assert.throws(() => parseExecCredential(out, cfg), (e: Error) => {
        assert.match(e.message, /^kc: users\[u\]\.exec: the credential plugin "plugin" printed /);
        assert.match(e.message, re);
        assert.ok(!e.message.includes('secret-abc'), e.message);
        return true;
      }, out);
    }
  });
});
