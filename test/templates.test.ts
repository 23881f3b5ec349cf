// src/templates against the real thing: every case in test/support/template-cases.ts is
// rendered by Go's text/template + sprig (test/support/gotemplate, built here with `go build`)
// and by our engine, and the results must be identical. Errors must be errors in both; ours
// must name the template and position, and read exactly as Go's (parse errors add a column).
import { after, before, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, TemplateError } from '../src/templates';
import * as parser from '../src/templates/parser';
import { TEMPLATE_CASES, TemplateCase } from './support/template-cases';
import { buildGoReference, type GoReference, type GoResult } from './support/go-reference';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

type Ours = { output: string } | { error: unknown };

function renderOurs(c: TemplateCase): Ours {
  try {
    return { output: compileTemplate(c.name, c.template).render(c.data) };
  } catch (error) {
    return { error };
  }
}

describe('Go text/template + sprig parity', () => {
  let reference: GoReference | undefined;
  let results: GoResult[] = [];

  before(async () => {
    reference = await buildGoReference();
    results = await reference.run(TEMPLATE_CASES.map((c) => ({ name: c.name, template: c.template, data: c.data })));
    assert.equal(results.length, TEMPLATE_CASES.length);
  }, { timeout: 320_000 });

  after(async () => {
    await reference?.remove();
  });

  test('the table is large and covers both outcomes', () => {
    assert.ok(TEMPLATE_CASES.length >= 80, `${TEMPLATE_CASES.length} cases`);
    const errors = results.filter((r) => r.error !== undefined).length;
    assert.ok(errors >= 20 && results.length - errors >= 100, `${errors} error cases of ${results.length}`);
  });

  TEMPLATE_CASES.forEach((c, i) => {
    test(c.what, () => {
      const go = results[i];
      const ours = renderOurs(c);
      if (go.error === undefined) {
        if ('error' in ours) assert.fail(`Go rendered ${JSON.stringify(go.output)} but we failed: ${String(ours.error)}`);
        assert.equal(ours.output, go.output);
        return;
      }
      if ('output' in ours) assert.fail(`Go failed (${go.error}) but we rendered ${JSON.stringify(ours.output)}`);
      const err = ours.error;
      assert.ok(err instanceof TemplateError, `not a TemplateError: ${String(err)}`);
      assert.equal(err.templateName, c.name);
      const prefix = new RegExp(`^template: ${escapeRegExp(c.name)}:(\\d+):(\\d+): `);
      const m = prefix.exec(err.message);
      assert.ok(m, `no name:line:col in ${JSON.stringify(err.message)}`);
      assert.equal(Number(m[1]), err.line);
      assert.equal(Number(m[2]), err.column);
      if (err.kind === 'exec') {
        assert.equal(err.message, go.error);
      } else {
        // Go reports parse errors with a line only; ours add the column after it.
        assert.equal(err.message.replace(`:${err.line}:${err.column}: `, `:${err.line}: `), go.error);
      }
    });
  });
});

describe('compiled templates', () => {
  test('parse once, render many times with different data', () => {
    const parse = mock.method(parser, 'parseTemplates');
    try {
      const t = compileTemplate('ConnectorClass git, spec.authProbes[0].probe.http.path',
        '/{{- range .Connector.Spec.Auth.Params }}{{- if eq .Name "repository" }}{{ .Value.StringVal }}{{ end }}{{- end }}/info/refs');
      const repo = (name: string) => ({ Connector: { Spec: { Auth: { Params: [{ Name: 'repository', Value: { StringVal: name } }] } } } });
      assert.equal(t.render(repo('a/one.git')), '/a/one.git/info/refs');
      assert.equal(t.render(repo('b/two.git')), '/b/two.git/info/refs');
      assert.equal(t.render({}), '//info/refs');
      assert.equal(t.render(repo('a/one.git')), '/a/one.git/info/refs');
      assert.equal(parse.mock.callCount(), 1);
    } finally {
      parse.mock.restore();
    }
  });

  test('renders do not share state', () => {
    const t = compileTemplate('t', '{{ $d := dict "n" 0 }}{{ $_ := set $d "n" (add (get $d "n") 1) }}{{ $d.n }}{{ range $i, $v := . }}{{ $v }}{{ end }}');
    assert.equal(t.render(['x']), '1x');
    assert.equal(t.render(['y', 'z']), '1yz');
  });

  test('parse errors surface at compile time with name, line and column', () => {
    const name = 'ConnectorClass git, spec.configurations[0].data[".gitconfig"]';
    assert.throws(() => compileTemplate(name, '[http]\n  extraHeader = {{ .context.token | b64enc }\n'), (e: unknown) => {
      assert.ok(e instanceof TemplateError);
      assert.equal(e.kind, 'parse');
      assert.equal(e.templateName, name);
      assert.equal(e.line, 2);
      assert.equal(e.message, `template: ${name}:2:${e.column}: ${e.detail}`);
      return true;
    });
  });

  test('execution errors carry name, line, column and Go wording', () => {
    const t = compileTemplate('probe', 'Basic {{ printf "%s:%s" .Secret.StringData.username .Secret.StringData.password | b64enc }}\n{{ .Secret.x.y }}');
    assert.equal(t.render({ Secret: { StringData: { username: 'u', password: 'p' } } }), 'Basic dTpw\n<no value>');
    assert.throws(() => t.render({ Secret: { StringData: { username: 'u', password: 'p' }, x: 'str' } }), (e: unknown) => {
      assert.ok(e instanceof TemplateError);
      assert.equal(e.kind, 'exec');
      assert.equal(e.line, 2);
      assert.equal(e.column, 10);
      assert.equal(e.message, 'template: probe:2:10: executing "probe" at <.Secret.x.y>: can\'t evaluate field y in type interface {}');
      return true;
    });
  });

  test('unsupported sprig functions are refused when compiling, with the reason', () => {
    for (const [fn, reason] of [['env "HOME"', /environment/], ['now', /date/], ['regexMatch "a" "b"', /regular expression/], ['genCA "x" 1', /crypto/], ['randAlpha 3', /random/]] as const) {
      assert.throws(() => compileTemplate('t', `{{ ${fn} }}`), (e: unknown) => {
        assert.ok(e instanceof TemplateError);
        assert.equal(e.kind, 'parse');
        assert.match(e.message, reason);
        return true;
      }, fn);
    }
  });

  test('keys are sorted (Go leaves them in map order)', () => {
    assert.equal(compileTemplate('t', '{{ keys . }} {{ values . }}').render({ b: 1, c: 2, a: 3 }), '[a b c] [3 1 2]');
  });

  test('the input data is never modified', () => {
    const data = { spec: { address: 'https://x' }, list: [1, 2] };
    const before = JSON.stringify(data);
    assert.throws(() => compileTemplate('t', '{{ set .spec "address" "evil" }}').render(data), /cannot modify the template's input data/);
    assert.equal(compileTemplate('t', '{{ $c := deepCopy .spec }}{{ $_ := set $c "address" "copy" }}{{ $c.address }} {{ .spec.address }}').render(data), 'copy https://x');
    compileTemplate('t', '{{ append .list 3 }}{{ unset (dict "a" 1) "a" }}').render(data);
    assert.equal(JSON.stringify(data), before);
  });

  test('non-JSON values and runaway recursion give template errors, never raw JS errors', () => {
    const t = compileTemplate('t', '{{ .f }}|{{ .b }}|{{ .d }}|{{ .l }}');
    assert.equal(t.render({ f: () => 1, b: 10n, d: new Date(0), l: [undefined, 1] }), '<no value>|10|1970-01-01T00:00:00.000Z|[<nil> 1]');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => t.render(cyclic), TemplateError);
    assert.throws(() => compileTemplate('t', '{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}').render({}), (e: unknown) => {
      assert.ok(e instanceof TemplateError);
      assert.match(e.message, /exceeded maximum template depth/);
      return true;
    });
  });
});
