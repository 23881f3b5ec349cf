// The router: every way in, and which requests take it (src/server/router.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { Router } from '../src/server/router';
import { Resolver } from '../src/server/resolve';

const req = (method: string, url: string, host?: string): IncomingMessage =>
  ({ method, url, headers: host === undefined ? {} : { host } }) as unknown as IncomingMessage;

describe('router', () => {
  const r = new Router(new Resolver('svc.cluster.local'));
  test('each way in', () => {
    assert.equal(r.wayOf(req('CONNECT', 'github.com:443', 'github.com:443')), 'connect');
    assert.equal(r.wayOf(req('GET', 'http://tool.example/x', 'tool.example')), 'forward');
    assert.equal(r.wayOf(req('GET', '/x', 'c-git.team.svc.cluster.local')), 'host-form');
    assert.equal(r.wayOf(req('GET', '/configurations/namespaces/team/connectors/git', 'proxy')), 'configurations');
    assert.equal(r.wayOf(req('GET', '/v2/', 'proxy')), 'registry-base');
    assert.equal(r.wayOf(req('GET', '/v2', 'proxy')), 'registry-base');
    assert.equal(r.wayOf(req('GET', '/namespaces/team/connectors/git/repo.git/info/refs', 'proxy')), 'path-form');
    assert.equal(r.wayOf(req('GET', '/v2/namespaces/team/connectors/oci/app/manifests/1', 'proxy')), 'path-form');
    assert.equal(r.wayOf(req('POST', '/connectors/v1alpha1/team/gitlab/path/api/v4/projects', 'proxy')), 'gateway');
  });
  test('the Connectors API gateway is on the proxy\'s own host only', () => {
    assert.equal(r.wayOf(req('GET', '/connectors/v1alpha1/team/gitlab/path/x', 'c-gitlab.team.svc.cluster.local')), 'host-form');
    assert.equal(r.wayOf(req('GET', '/connectors/v1alpha1', 'proxy')), 'path-form');
  });
  test('on a Connector host every path is the tool\'s: /v2/ and /configurations/ too', () => {
    assert.equal(r.wayOf(req('GET', '/v2/', 'c-reg.team.svc.cluster.local:8080')), 'host-form');
    assert.equal(r.wayOf(req('GET', '/configurations/namespaces/a/connectors/b', 'c-x.team.svc.cluster.local')), 'host-form');
  });
  test('CONNECT wins over everything; an absolute target is the forward proxy even on a Connector host', () => {
    assert.equal(r.wayOf(req('CONNECT', '/v2/', 'c-reg.team.svc.cluster.local')), 'connect');
    assert.equal(r.wayOf(req('GET', 'http://c-reg.team.svc.cluster.local/v2/', 'c-reg.team.svc.cluster.local')), 'forward');
  });
  test('anything else is the path form (which answers 404 naming the forms)', () => {
    assert.equal(r.wayOf(req('GET', '/', undefined)), 'path-form');
    assert.equal(r.wayOf(req('GET', '/v2/library/alpine/manifests/3', 'proxy')), 'path-form');
  });
});
