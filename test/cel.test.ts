// Probe response checks (`probe.http.response.cel`, src/status/cel.ts) against cel-go, the
// engine of the controller the docs describe: the docs' expressions and the common operators,
// each evaluated by cel-go (test/support/gotemplate) and by ours on the same answer. Both must
// give the same value, or both an error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { evaluateResponseCel } from '../src/status/cel';
import { buildGoReference, type GoReference, type GoResult } from './support/go-reference';

interface Answer { statusCode: number; headers: Record<string, string[]>; body: string }

const json = (statusCode: number, body: unknown): Answer => ({ statusCode, headers: { 'Content-Type': ['application/json'] }, body: JSON.stringify(body) });
const UP = json(200, { id: 'x', version: '10.4', status: 'UP' });
const DOWN = json(200, { id: 'x', version: '10.4', status: 'DOWN' });
const VALID = json(200, { valid: true });
const INVALID = json(200, { valid: false });
const HEALTH = json(200, { status: 'healthy', uptime: 61.5, errors: [], count: 3, tags: ['a', 'b'], nested: { ok: true, n: null } });
const TEXT: Answer = { statusCode: 200, headers: { 'content-type': ['text/plain; charset=utf-8'], 'X-Multi': ['one', 'two'] }, body: 'operation success, no problems' };
const NOT_FOUND: Answer = { statusCode: 404, headers: {}, body: '' };
const UNAUTHORIZED = json(401, { errors: [{ msg: 'Authentication required' }] });
const LIST = json(200, [{ name: 'maven-public', format: 'maven2' }, { name: 'npm-proxy', format: 'npm' }]);

const rows: Array<[what: string, expr: string, answers: Answer[]]> = [
  // ---- the docs' expressions ----
  ['connectorclass.mdx: the status code', 'response.statusCode == 200', [UP, NOT_FOUND, UNAUTHORIZED]],
  ['SonarQube class: auth probe', 'statusCode == 200 && bodyJSON.valid == true', [VALID, INVALID, UNAUTHORIZED]],
  ['SonarQube class: liveness probe', "statusCode == 200 && bodyJSON.status == 'UP'", [UP, DOWN, NOT_FOUND]],
  ['SonarQube design: healthy', "response.statusCode == 200 && bodyJSON.status == 'healthy'", [HEALTH, UP]],
  ['SonarQube design: uptime and errors', 'response.body.uptime > 60 && bodyJSON.errors.size() == 0', [HEALTH]],
  ['SonarQube design: body text', "response.bodyString.contains('success') && !response.bodyString.contains('error')", [TEXT, UP]],
  ['SonarQube design: header', "headers['content-type'][0].startsWith('application/json')", [UP, TEXT]],
  // ---- common operators ----
  ['in a list', 'response.statusCode in [200, 204]', [UP, NOT_FOUND]],
  ['ranges', 'response.statusCode >= 200 && response.statusCode < 300', [UP, NOT_FOUND, UNAUTHORIZED]],
  ['or and not', '!(statusCode == 401 || statusCode == 403)', [UP, UNAUTHORIZED]],
  ['ternary', "statusCode == 200 ? bodyJSON.status == 'UP' : false", [UP, DOWN, NOT_FOUND]],
  ['has() on the body', 'has(response.body.status)', [UP, VALID, NOT_FOUND]],
  ['has() then use', "has(bodyJSON.status) && bodyJSON.status == 'UP'", [UP, VALID]],
  ['a missing key is an error', "bodyJSON.status == 'UP'", [VALID]],
  ['double vs int compare', 'bodyJSON.count == 3 && bodyJSON.uptime < 62', [HEALTH]],
  ['int() of a double', 'int(bodyJSON.uptime) == 61', [HEALTH]],
  ['size of a list and of a string', 'size(bodyJSON.tags) == 2 && size(bodyString) > 10', [HEALTH]],
  ['exists over a list', "bodyJSON.tags.exists(t, t == 'b')", [HEALTH]],
  ['all over a list', 'bodyJSON.tags.all(t, size(t) == 1)', [HEALTH]],
  ['exists over a top-level list body', "body.exists(r, r.format == 'npm')", [LIST]],
  ['map over a list', "body.map(r, r.name) == ['maven-public', 'npm-proxy']", [LIST]],
  ['filter', "body.filter(r, r.format == 'maven2').size() == 1", [LIST]],
  ['nested map and null', 'bodyJSON.nested.ok && bodyJSON.nested.n == null', [HEALTH]],
  ['in on a map', "'status' in bodyJSON", [HEALTH, VALID]],
  ['matches (RE2)', "bodyString.matches('^operation (success|failure)')", [TEXT, UP]],
  ['endsWith and string concat', "bodyString.endsWith('problems') && 'a' + 'b' == 'ab'", [TEXT]],
  ['multi-valued header', "response.headers['X-Multi'] == ['one', 'two'] && headers['x-multi'][1] == 'two'", [TEXT]],
  ['missing header is an error', "headers['x-nope'][0] == 'x'", [TEXT]],
  ['canonical header names', "'Content-Type' in response.headers", [UP]],
  ['arithmetic', 'statusCode / 100 == 2 && statusCode % 100 == 0 && statusCode - 200 == 0', [UP, NOT_FOUND]],
  ['string conversion', "string(statusCode) == '200'", [UP]],
  ['type test', 'type(bodyJSON.count) == double && type(statusCode) == int', [HEALTH]],
  ['empty body is an empty map', 'size(body) == 0', [NOT_FOUND]],
  ['non-JSON body is an empty map', "size(response.body) == 0 && bodyString != ''", [TEXT]],
  ['division by zero is an error', 'statusCode / 0 == 1', [UP]],
  ['not a bool', 'statusCode', [UP]],
  ['a syntax error', 'statusCode ==', [UP]],
  ['an unknown variable', 'code == 200', [UP]],
];

const CASES = rows.flatMap(([what, cel, answers]) => answers.map((response, i) => ({ what: `${what} (answer ${i + 1}: ${response.statusCode})`, cel, response })));

describe('response.cel: ours (@bufbuild/cel) against cel-go', () => {
  let reference: GoReference | undefined;
  let results: GoResult[] = [];

  before(async () => {
    reference = await buildGoReference();
    results = await reference.run(CASES.map((c) => ({ cel: c.cel, response: c.response })));
    assert.equal(results.length, CASES.length);
  }, { timeout: 320_000 });

  after(async () => { await reference?.remove(); });

  test('the table covers true, false and errors', () => {
    const values = results.map((r) => r.error !== undefined ? 'error' : r.output);
    for (const v of ['true', 'false', 'error']) assert.ok(values.filter((x) => x === v).length >= 5, `${v}: ${values.filter((x) => x === v).length}`);
  });

  CASES.forEach((c, i) => {
    test(`${c.what}: ${c.cel}`, () => {
      const go = results[i]!;
      const ours = evaluateResponseCel(c.cel, c.response);
      if (go.error !== undefined || (go.output !== 'true' && go.output !== 'false')) {
        // cel-go refuses a non-bool at the probe (the controller wants a bool): an error for us.
        assert.ok('error' in ours, `cel-go: ${go.error ?? go.output}; ours: ${JSON.stringify(ours)}`);
        return;
      }
      assert.ok('ok' in ours, `cel-go: ${go.output}; ours failed: ${'error' in ours ? ours.error : ''}`);
      assert.equal(String(ours.ok), go.output);
    });
  });
});
