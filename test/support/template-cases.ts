// The case table of test/templates.test.ts: each template is rendered with its data by Go's
// text/template + sprig (test/support/gotemplate) and by src/templates; results must be equal.
// The last rows are every template of the docs' classes (test/fixtures/docs): each
// configuration file with the data the configurations endpoint gives it, each probe path and
// header with the probes' Go-style data.
import type { Connector, ConnectorClass, Secret } from '../../src/types';
import { configurationData, type RenderTarget } from '../../src/templates/configurations';
import { goConnector, goSecret } from '../../src/status/conditions';
import { docsExamples } from './docs-fixtures';

export interface TemplateCase {
  /** Template name, as the caller passes it (appears in errors). */
  readonly name: string;
  readonly template: string;
  readonly data: unknown;
  /** What the case covers, for the test title. */
  readonly what: string;
}

const CONFIG_NAME = 'ConnectorClass git, spec.configurations[0].data[".gitconfig"]';
const PROBE_NAME = 'ConnectorClass git, spec.authProbes[0].probe.http.path';

// The seed's objects: probe templates see Go-style names, configuration templates lower-case JSON.
const probeData = {
  Connector: {
    Name: 'git', Namespace: 'team-a',
    Spec: {
      Address: 'https://github.com',
      Auth: {
        Name: 'basicAuth',
        Params: [
          { Name: 'other', Value: { Type: 'string', StringVal: 'ignored' } },
          { Name: 'repository', Value: { Type: 'string', StringVal: 'org/repo.git' } },
        ],
      },
    },
  },
  Secret: { StringData: { username: 'alice', password: 'p@ss:wörd', token: 'tok-123' } },
};
const probeNoSecret = { Connector: probeData.Connector };
const configData = {
  connector: {
    apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector',
    metadata: { name: 'git', namespace: 'team-a', generation: 3, labels: { team: 'a', tier: 'gold' } },
    spec: {
      connectorClassName: 'git', address: 'https://github.com/org',
      auth: { name: 'basicAuth', secretRef: { name: 'git-secret' } },
      params: [{ name: 'sslVerify', value: 'false' }, { name: 'depth', value: '1' }],
    },
    status: { proxyAddress: 'http://c-git.team-a.proxy.local', conditions: [{ type: 'Ready', status: 'True' }] },
  },
  context: { token: 'eyJhbGciOiJSUzI1NiJ9.payload.sig' },
};

const gitconfig = `[http "{{ .connector.status.proxyAddress }}"]
    extraHeader = "Authorization: Basic {{ printf ":%s" .context.token | b64enc }}"
[url "{{ .connector.status.proxyAddress }}"]
    insteadOf = {{ .connector.spec.address }}
`;

const seedGitconfig = `[http]
    extraHeader = Authorization: Basic {{ printf ":%s" .context.token | b64enc }}
[url "{{ .connector.status.proxyAddress }}"]
    insteadOf = {{.connector.spec.address}}
`;

const seedProbePath = '/{{- range .Connector.Spec.Auth.Params }}{{- if eq .Name "repository" }}{{ .Value.StringVal }}{{ end }}{{- end }}/info/refs?service=git-upload-pack';
const seedProbeHeader = '{{- if .Secret }}Basic {{ printf "%s:%s" .Secret.StringData.username .Secret.StringData.password | b64enc }} {{- end }}';

const dockerConfig = `{
  "auths": {
    {{ .connector.status.proxyAddress | trimPrefix "http://" | quote }}: {
      "auth": {{ printf "%s:%s" "token" .context.token | b64enc | quote }}
    }
  }
}
`;

const npmrc = `{{- $host := .connector.status.proxyAddress | trimPrefix "http://" | trimPrefix "https://" -}}
registry={{ .connector.status.proxyAddress }}/
//{{ $host }}/:_authToken={{ .context.token }}
{{- range $i, $p := .connector.spec.params }}
# {{ $i }}: {{ $p.name }}={{ $p.value | quote }}
{{- end }}
`;

const nested = {
  a: { b: { c: 'deep' }, list: [1, 2, 3], empty: [], emptyMap: {}, zero: 0, f: 1.5, t: true, f0: false, s: '', n: null },
  m: { zeta: 26, alpha: 1, Mike: 13, 'key-with-dash': 'd', 'é': 'e-acute', '10': 'ten', '9': 'nine' },
  list: ['x', 'y', 'z'],
  objs: [{ name: 'a', v: 1 }, { name: 'b', v: 2 }, { name: 'c', v: 3 }],
  num: 42, neg: -7, big: 1234567890123, float: 3.25, str: 'Hello, World', html: '<a href="x">&</a>', uni: 'héllo wörld ✓',
};

type Row = [what: string, template: string, data?: unknown, name?: string];

const rows: Row[] = [
  // ---- text, comments, trimming ----
  ['plain text', 'just text, no actions'],
  ['empty template', ''],
  ['comment', 'a{{/* a comment */}}b'],
  ['trimmed comment', 'a  {{- /* c */ -}}  b'],
  ['left trim', 'a  \n\t {{- "x" }}  b'],
  ['right trim', 'a  {{ "x" -}} \n\n  b'],
  ['both trims over newlines', 'line1\n  {{- if true -}}\n   yes\n  {{- end -}}\n\nline2'],
  ['trim marker needs a space (negative number)', '{{-3}}'],
  ['trim inside range', '{{ range .list -}}\n  [{{ . }}]\n{{- end }}', nested],
  ['whitespace kept without markers', '{{ if true }}\n  x\n{{ end }}\n'],

  // ---- fields, missing keys, nil ----
  ['top-level field', '{{ .str }}', nested],
  ['nested field', '{{ .a.b.c }}', nested],
  ['missing key prints <no value>', '[{{ .nope }}]', nested],
  ['missing nested key', '[{{ .nope.deeper.still }}]', nested],
  ['missing key under existing map', '[{{ .a.b.nope }}]', nested],
  ['field of a string is an error', '{{ .str.x }}', nested],
  ['field of JSON null is an error', '{{ .a.n.x }}', nested],
  ['JSON null prints <no value>', '[{{ .a.n }}]', nested],
  ['field of a list element (range dot)', '{{ range .list }}{{ .x }}{{ end }}', nested],
  ['dot prints a map sorted', '{{ .m }}', nested],
  ['dot prints a list and nested', '{{ .a }}', nested],
  ['nil data', '[{{ . }}][{{ .x }}]', null],
  ['number formats from data', '{{ .num }} {{ .neg }} {{ .big }} {{ .float }} {{ .a.f }}', nested],
  ['field with arguments is an error', '{{ .str "x" }}', nested],
  ['chained field on parenthesized pipeline', '{{ (dict "a" (dict "b" "c")).a.b }}'],
  ['variable field chain', '{{ $c := .connector }}{{ $c.metadata.name }}/{{ $.connector.metadata.namespace }}', configData],

  // ---- variables ----
  ['declare and use', '{{ $x := .str }}{{ $x }}', nested],
  ['assign', '{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}'],
  ['declared inside if is scoped', '{{ $x := "outer" }}{{ if true }}{{ $x := "inner" }}{{ $x }}{{ end }}{{ $x }}'],
  ['$ is the root inside range', '{{ range .list }}{{ $.num }}{{ end }}', nested],
  ['declaration prints nothing', '[{{ $x := "hidden" }}]'],
  ['undefined variable is a parse error', '{{ $nope }}'],

  // ---- if / else ----
  ['if true', '{{ if .a.t }}yes{{ end }}', nested],
  ['if/else', '{{ if .a.f0 }}yes{{ else }}no{{ end }}', nested],
  ['else if chain', '{{ if eq .num 1 }}one{{ else if eq .num 42 }}answer{{ else }}other{{ end }}', nested],
  ['truthiness of empties', '{{ if .a.s }}1{{ end }}{{ if .a.zero }}2{{ end }}{{ if .a.empty }}3{{ end }}{{ if .a.emptyMap }}4{{ end }}{{ if .a.n }}5{{ end }}{{ if .nope }}6{{ end }}{{ if .a.f }}7{{ end }}', nested],
  ['truthiness of non-empties', '{{ if .str }}1{{ end }}{{ if .neg }}2{{ end }}{{ if .list }}3{{ end }}{{ if .m }}4{{ end }}{{ if .a.t }}5{{ end }}', nested],
  ['and/or/not', '{{ and 1 0 "x" }}|{{ and 1 "x" }}|{{ or 0 "" "z" }}|{{ or 0 "" }}|{{ not .a.s }}|{{ not .str }}', nested],
  ['and short-circuits', '{{ if and .nope (index .nope "x") }}y{{ else }}n{{ end }}'],
  ['or short-circuits', '{{ or .str (fail "not evaluated") }}', nested],

  // ---- with ----
  ['with sets dot', '{{ with .a.b }}{{ .c }}{{ end }}', nested],
  ['with else', '{{ with .nope }}{{ . }}{{ else }}none{{ end }}', nested],
  ['with else with', '{{ with .nope }}a{{ else with .str }}{{ . }}{{ end }}', nested],
  ['with declares variable', '{{ with $x := .num }}{{ $x }}-{{ . }}{{ end }}', nested],

  // ---- range ----
  ['range list', '{{ range .list }}<{{ . }}>{{ end }}', nested],
  ['range index and value', '{{ range $i, $v := .list }}{{ $i }}={{ $v }};{{ end }}', nested],
  ['range one variable gets the element', '{{ range $v := .list }}{{ $v }}{{ end }}', nested],
  ['range map sorts keys', '{{ range $k, $v := .m }}{{ $k }}:{{ $v }} {{ end }}', nested],
  ['range map values', '{{ range .m }}{{ . }},{{ end }}', nested],
  ['range else on empty', '{{ range .a.empty }}x{{ else }}empty{{ end }}', nested],
  ['range else on missing', '{{ range .nope }}x{{ else }}missing{{ end }}', nested],
  ['range over objects', '{{ range .objs }}{{ .name }}={{ .v }} {{ end }}', nested],
  ['range break and continue', '{{ range $i, $v := .list }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $v "z" }}{{ break }}{{ end }}{{ $v }}{{ end }}', nested],
  ['range over an integer', '{{ range 3 }}{{ . }}{{ end }}'],
  ['range over a string is an error', '{{ range .str }}{{ end }}', nested],
  ['range int with two variables is an error', '{{ range $i, $v := 3 }}{{ end }}'],
  ['range variables reassigned with =', '{{ $i := 0 }}{{ $v := "" }}{{ range $i, $v = .list }}{{ end }}{{ $i }}{{ $v }}', nested],
  ['nested range with $', '{{ range $o := .objs }}{{ range $.list }}{{ $o.name }}{{ . }} {{ end }}{{ end }}', nested],

  // ---- define / template / block ----
  ['define and template', '{{ define "greet" }}Hi {{ . }}!{{ end }}{{ template "greet" .str }}', nested],
  ['template with no data', '{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" }}'],
  ['template sees only its dot', '{{ define "t" }}{{ $.x }}{{ end }}{{ $y := 1 }}{{ template "t" (dict "x" "from-dict") }}'],
  ['block with default body', '{{ block "b" .num }}n={{ . }}{{ end }}', nested],
  ['undefined template is an error', '{{ template "missing" . }}'],
  ['recursive define', '{{ define "r" }}{{ if gt . 0 }}{{ . }}{{ template "r" (sub . 1 | int) }}{{ end }}{{ end }}{{ template "r" 3 }}'],

  // ---- builtins ----
  ['len', '{{ len .list }} {{ len .m }} {{ len .str }} {{ len .uni }}', nested],
  ['len of a number is an error', '{{ len .num }}', nested],
  ['len of missing is an error', '{{ len .nope }}', nested],
  ['index list and map', '{{ index .list 1 }} {{ index .m "alpha" }} {{ index .a "b" "c" }}', nested],
  ['index missing map key', '[{{ index .m "nope" }}]', nested],
  ['index out of range', '{{ index .list 5 }}', nested],
  ['index string gives a byte', '{{ index .str 0 }}', nested],
  ['eq with several', '{{ eq .str "x" "Hello, World" }} {{ eq .num 41 }} {{ eq .nope "x" }} {{ eq .nope .nope2 }}', nested],
  ['ne lt le gt ge', '{{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }} {{ lt .num 100 }}', nested],
  ['eq int vs float is an error', '{{ eq .float 3 }}', nested],
  ['lt on missing is an error', '{{ lt .nope 1 }}', nested],
  ['eq on lists is an error', '{{ eq .list .list }}', nested],
  ['print', '{{ print "a" 1 2 "b" true nil }}'],
  ['println', '{{ println "a" 1 }}'],
  ['html', '{{ html .html }} {{ .html | html }} {{ html .nope }}', nested],
  ['js', '{{ js "it\'s <b>\\"x\\"</b> & = \\\\ \\n" }}'],
  ['urlquery', '{{ urlquery "a b&c=d/é?" }} {{ .str | urlquery }}', nested],
  ['call of a non-function is an error', '{{ call .str }}', nested],
  ['pipeline as last argument', '{{ "abc" | printf "%s-%s" "x" }}'],
  ['parenthesized pipelines', '{{ printf "%s/%s" (lower "A") (.str | upper) }}', nested],
  ['non-function with arguments is an error', '{{ .str | .num }}', nested],

  // ---- printf ----
  ['printf %s %d %v %q', '{{ printf "%s|%d|%v|%q|%v" .str .num .list .str .m }}', nested],
  ['printf %x %X %o %b %c %U', '{{ printf "%x %X %o %b %c %U %x %X" 255 255 8 5 65 9731 "hi" "hi" }}'],
  ['printf %t and %%', '{{ printf "%t %t 100%%" true .a.f0 }}', nested],
  ['printf %f precision and width', '{{ printf "[%f] [%.2f] [%8.3f] [%-8.1f] [%08.2f] [%+.1f]" 3.14159 2.005 3.14159 2.5 -3.5 2.0 }}'],
  ['printf %d width, zero pad, left', '{{ printf "[%5d] [%-5d] [%05d] [%+d] [% d] [%.3d]" 42 42 -42 42 42 7 }}'],
  ['printf %s width and precision', '{{ printf "[%8s] [%-8s] [%.2s] [%5.1s] [%-4s]" "abc" "abc" "abcdef" "xyz" "héé" }}'],
  ['printf %e %g', '{{ printf "%e %E %g %G %.3e %.3g %g %g" 123456.789 0.000123 1e21 1e-7 1234.5678 1234.5678 100000.0 1000000.0 }}'],
  ['printf float rounding is half-even on exact ties', '{{ printf "%.0f %.0f %.0f %.2f %.1f %.1f" 0.5 1.5 2.5 0.125 0.25 0.35 }}'],
  ['printf %v of floats and ints from data', '{{ printf "%v %v %v %v" .num .float .a.f 1e6 }}', nested],
  ['printf bad verb and type', '{{ printf "%d %s %z" "x" 3 1 }}'],
  ['printf missing and extra', '{{ printf "%s %s" "a" }}|{{ printf "%s" "a" "b" 3 }}'],
  ['printf %T', '{{ printf "%T %T %T %T %T %T %T" .num .float .str .list .m .a.t 1 }}', nested],
  ['printf %#v', '{{ printf "%#v" .objs }}', nested],
  ['printf argument indexes and star', '{{ printf "%[2]s %[1]s %*d %.*f" "a" "b" 5 42 2 3.14159 }}'],
  ['printf %q escaping', '{{ printf "%q %+q %#q %q" "tab\\there\\x00\\u00e9" "é" "back`tick" 9731 }}'],
  ['printf nil', '{{ printf "%v %s %d" nil .nope .a.n }}', nested],

  // ---- literals ----
  ['number literal forms', '{{ 1e6 }} {{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 017 }} {{ 1_000 }} {{ -3 }} {{ +4 }} {{ 1.50 }} {{ \'a\' }} {{ 0x1p4 }}'],
  ['string literals', '{{ "tab\\tnew\\\\" }}|{{ `raw \\t` }}|{{ "\\u00e9\\x41" }}'],
  ['bool and nil literals', '{{ true }} {{ false }} {{ printf "%v" nil }}'],

  // ---- sprig: strings ----
  ['trim family', '[{{ trim "  \\t x y \\n" }}] [{{ trimAll "$-" "$-$abc-$" }}] [{{ trimPrefix "ab" "abcab" }}] [{{ trimSuffix "ab" "abcab" }}]'],
  ['upper lower title untitle', '{{ upper "héllo ß" }} {{ lower "HÉLLO" }} {{ title "hello wide-world foo_bar x.y" }} {{ untitle "Hello World" }}'],
  ['replace', '{{ replace "a" "b" "banana" }} {{ "x.y.z" | replace "." "/" }} {{ replace "" "-" "ab" }}'],
  ['default empty coalesce', '{{ default "dflt" .nope }} {{ .str | default "dflt" }} {{ default "d" .a.zero }} {{ default "d" .a.empty }} {{ empty .a.s }} {{ empty .str }} {{ coalesce .nope .a.s .str }} {{ coalesce .nope }}', nested],
  ['quote squote', '{{ quote "a\\"b" 1 .nope }} {{ squote "a" 2 }} {{ .list | quote }}', nested],
  ['join split splitList', '{{ join "," .list }} {{ join "-" (list 1 "a" nil true) }} {{ (split "," "a,b,c")._1 }} {{ splitList "/" "a/b//c" }} {{ split "" "ab" }}', nested],
  ['hasPrefix hasSuffix contains', '{{ hasPrefix "He" .str }} {{ hasSuffix "x" .str }} {{ contains "lo, W" .str }} {{ .str | contains "zz" }}', nested],
  ['repeat', '{{ repeat 3 "ab" }}|{{ "x" | repeat 2 }}'],
  ['repeat with int64 from data is a type error', '{{ repeat .num "x" }}', nested],
  ['indent nindent', '{{ indent 2 "a\\nb" }}|{{ "x\\ny" | nindent 4 }}'],
  ['trunc substr', '{{ trunc 5 .str }} {{ trunc -5 .str }} {{ trunc 50 .str }} {{ substr 0 5 .str }} {{ substr 7 -1 .str }} {{ substr -1 3 .str }}', nested],
  ['substr out of range is an error', '{{ substr 5 2 "abc" }}'],
  ['cat nospace plural', '{{ cat "a" 1 nil "b" }} {{ nospace " a b\\tc " }} {{ plural "one" "many" 1 }} {{ plural "one" "many" 2 }}'],
  ['toString', '{{ toString 42 }} {{ toString .float }} {{ toString .list }} {{ toString nil }} {{ toString "s" }}', nested],
  ['sortAlpha', '{{ sortAlpha (list "b" "a" "C" 10 "é") }} {{ sortAlpha "single" }}'],

  // ---- sprig: encodings and hashes ----
  ['b64enc b64dec', '{{ b64enc "user:pass" }} {{ b64dec "dXNlcjpwYXNz" }} {{ "héllo" | b64enc | b64dec }}'],
  ['b64dec errors are returned as text', '{{ b64dec "!!!" }}|{{ b64dec "YWJ" }}|{{ b64dec "YQ==YQ==" }}|{{ b64dec "YQ=" }}'],
  ['b32enc b32dec', '{{ b32enc "hello" }} {{ b32dec "NBSWY3DP" }} {{ b32dec "NBSWY3D" }} {{ b32enc "a" }}'],
  ['hashes', '{{ sha256sum "abc" }} {{ sha1sum "abc" }} {{ adler32sum "Wikipedia" }}'],
  ['sha512sum', '{{ sha512sum "" }}'],

  // ---- sprig: numbers and conversions ----
  ['add sub mul div mod', '{{ add 1 2 3 }} {{ sub 10 .num }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ div -7 2 }} {{ mod 7 3 }} {{ mod -7 3 }} {{ add1 .num }}', nested],
  ['arithmetic on strings and floats', '{{ add "5" 1.9 }} {{ mul "3" "x" }} {{ add "0x10" "010" }} {{ sub .float 1 }}', nested],
  ['div by zero is an error', '{{ div 1 0 }}'],
  ['int atoi int64 float64', '{{ int "42" }} {{ atoi "-7" }} {{ atoi "x" }} {{ int64 3.9 }} {{ float64 "2.5" }} {{ float64 3 }} {{ int "12.00" }} {{ int true }}'],
  ['max min', '{{ max 1 5 3 }} {{ min 4 2 8 }} {{ biggest 1 9 }} {{ maxf 1.5 2 }} {{ minf 1.5 2 }}'],
  ['floor ceil round', '{{ floor 1.7 }} {{ ceil 1.2 }} {{ round 3.14159 2 }} {{ round 2.5 0 }}'],
  ['until untilStep seq', '{{ until 3 }} {{ untilStep 0 10 3 }} {{ seq 3 }} {{ seq 2 5 }} {{ seq 0 2 10 }}'],
  ['ternary', '{{ ternary "yes" "no" true }} {{ ternary "yes" "no" (eq .num 1) }}', nested],

  // ---- sprig: lists ----
  ['list first last rest initial', '{{ $l := list 1 2 3 }}{{ first $l }} {{ last $l }} {{ rest $l }} {{ initial $l }} {{ len $l }}'],
  ['append prepend concat reverse', '{{ append .list "w" }} {{ prepend .list "w" }} {{ concat .list (list 1 2) }} {{ reverse .list }}', nested],
  ['uniq without has compact', '{{ uniq (list 1 1 "a" "a" 2) }} {{ without .list "y" }} {{ has "y" .list }} {{ has 1 .list }} {{ compact (list "" 0 "a" nil 1) }}', nested],
  ['sprig slice', '{{ slice .list 1 }} {{ slice .list 0 2 }} {{ slice .list }}', nested],
  ['chunk', '{{ chunk 2 (list 1 2 3 4 5) }}'],
  ['first of missing is an error', '{{ first .nope }}', nested],
  ['empty list functions', '{{ first (list) }}|{{ rest (list) }}|{{ rest (list) | toJson }}'],

  // ---- sprig: dicts ----
  ['dict get hasKey', '{{ $d := dict "a" 1 "b" "two" }}{{ get $d "a" }} {{ get $d "zz" }} {{ hasKey $d "b" }} {{ hasKey $d "zz" }} {{ $d }}'],
  ['set unset on a dict', '{{ $d := dict "a" 1 }}{{ $_ := set $d "b" 2 }}{{ $_ := unset $d "a" }}{{ $d }}'],
  ['keys sorted', '{{ keys .m | sortAlpha }} {{ keys (dict "one" 1) }}', nested],
  ['values pick omit pluck', '{{ values (dict "a" 1) }} {{ pick .m "alpha" "zeta" "nope" }} {{ omit .a.b "c" }} {{ pluck "name" (index .objs 0) (index .objs 1) }}', nested],
  ['dig', '{{ dig "a" "b" "c" "default" . }} {{ dig "a" "x" "c" "default" . }}', nested],
  ['dict odd arguments', '{{ dict "a" 1 "b" }}'],
  ['hasKey on missing map', '{{ hasKey .nope "a" }}', nested],
  ['deepCopy', '{{ $c := deepCopy .a.b }}{{ $_ := set $c "d" 1 }}{{ $c }} {{ .a.b }}', nested],

  // ---- sprig: JSON ----
  ['toJson', '{{ toJson .objs }} {{ toJson .html }} {{ toJson .a }} {{ toJson .nope }}', nested],
  ['toPrettyJson', '{{ toPrettyJson .a }}', nested],
  ['toRawJson', '{{ toRawJson .html }}', nested],
  ['fromJson', '{{ $o := fromJson "{\\"k\\":[1,2.5,\\"x\\"],\\"n\\":null}" }}{{ $o.k }} {{ index $o.k 0 | printf "%T" }} {{ fromJson "not json" }}'],

  // ---- sprig: reflection, paths, flow ----
  ['typeOf kindOf', '{{ typeOf .num }} {{ typeOf .list }} {{ typeOf .m }} {{ kindOf .list }} {{ kindIs "string" .str }} {{ typeOf nil }} {{ typeIs "int" 1 }}', nested],
  ['deepEqual', '{{ deepEqual (list 1 2) (list 1 2) }} {{ deepEqual 1 .num }} {{ deepEqual .m .m }}', nested],
  ['paths', '{{ base "/a/b.txt" }} {{ dir "/a/b/c" }} {{ clean "a//b/../c/." }} {{ ext "x.tar.gz" }} {{ isAbs "/x" }} {{ base "" }} {{ dir "x" }} {{ clean "/../a" }}'],
  ['fail', '{{ fail "stop here" }}'],
  ['required present', '{{ required "need a token" .context.token }}', configData],
  ['required missing', 'x={{ required "need .nope" .nope }}', configData],

  // ---- type errors Go reports ----
  ['string function given a number', '{{ upper .num }}', nested],
  ['string function given missing value (pipeline)', '{{ .nope | b64enc }}', nested],
  ['string function given missing value (argument)', '{{ b64enc .nope }}', nested],
  ['string function given a JSON null', '{{ b64enc .a.n }}', nested],
  ['string parameter given a number literal', '{{ b64enc 3 }}'],
  ['wrong number of arguments', '{{ b64enc "a" "b" }}'],
  ['too few for variadic', '{{ printf }}'],
  ['set on nil map', '{{ set .nope "a" 1 }}', nested],

  // ---- parse errors ----
  ['unclosed action', 'line1\n{{ .a '],
  ['unterminated string', '{{ "abc }}'],
  ['unknown function', 'x\ny {{ nosuchfunc . }}'],
  ['unexpected end', '{{ end }}'],
  ['missing end', '{{ if true }}x'],
  ['else outside if', 'a{{ else }}b'],
  ['bad character', '{{ .a # }}'],
  ['empty pipeline', '{{ }}'],
  ['non-executable stage', '{{ "a" | "b" }}'],
  ['break outside range', '{{ break }}'],
  ['unclosed paren', '{{ (print "a" }}'],
  ['unclosed comment', '{{/* never closed'],
  ['multiple definition', '{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}'],

  // ---- more edges: bytes vs runes, prototype-named keys, verbs, positions ----
  ['byte-oriented substr and trunc', '{{ substr 1 3 "héllo" }}|{{ substr 1 2 "héllo" }}|{{ trunc 2 "héllo" }}|{{ len "😀" }}|{{ printf "%.1s|%c|%U" "😀x" 128512 128512 }}'],
  ['keys named like Object.prototype members', '[{{ .constructor }}][{{ .toString }}][{{ .__proto__ }}][{{ hasKey . "constructor" }}][{{ .hasOwnProperty }}]', {}],
  ['a real __proto__ key in data', '{{ index . "__proto__" }} {{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}', JSON.parse('{"__proto__":"p","b":1}')],
  ['printf verbs on lists and odd values', '{{ printf "%s|%d|%x|%v" .list .list -255 (dict) }}|{{ printf "%08b|%6.2f%%|%q|%#x|%#o|% x" 5 99.5 \'x\' 255 8 "hi" }}', nested],
  ['printf explicit indexes', '{{ printf "%[2]s %[1]s %[2]s" "a" "b" }} {{ printf "%*d|%-*d|%.*f" 5 42 4 7 2 3.14159 }}'],
  ['floats print like Go', '{{ printf "%v %v %v %v %v %v" 1e20 1e21 123456789.0 0.000001234 -0.0 100.0 }} {{ 2.50 }} {{ 1e-5 }}'],
  ['JSON float formatting', '{{ float64 "NaN" | toJson }}|{{ float64 "1e-7" | toJson }}|{{ float64 "1e21" | toJson }}|{{ float64 "1e20" | toJson }}|{{ toJson 2.0 }}'],
  ['mustToJson of NaN is an error', '{{ mustToJson (float64 "NaN") }}'],
  ['casts of odd strings', '{{ int "0x1F" }} {{ int "1e3" }} {{ int64 "  5" }} {{ float64 "1e3" }} {{ add1 "x" }} {{ int64 "-12.000" }}'],
  ['integer division and modulo of negatives', '{{ div .neg 2 }} {{ mod .neg 2 }} {{ div 7 -2 }}', nested],
  ['uint8 compares with int', '{{ eq (index "abc" 0) 97 }} {{ lt (index "abc" 0) 98 }} {{ printf "%d %T" (index "abc" 0) (index "abc" 0) }}'],
  ['string comparison is bytewise', '{{ lt "a" "B" }} {{ lt "Z" "a" }} {{ lt "é" "z" }} {{ gt "b" "a" }}'],
  ['not and or on missing', '{{ not .nope }} [{{ or .nope }}] [{{ and .nope "x" }}]', nested],
  ['and with no arguments is an error', '{{ and }}'],
  ['index past the end of a list', '{{ index .list 3 }}', nested],
  ['multi-stage pipeline', '{{ .str | trunc 5 | upper | quote }} {{ .nope | default (list 1 2) | len }}', nested],
  ['more sprig values', '{{ quote .nope }}|{{ squote .nope "x" }}|{{ empty (dict) }}|{{ toJson (dict "b" 1 "a" (list 1 nil)) }}|{{ fromJson "[1,2]" | len }}|{{ toString (fromJson "1.0") }}'],
  ['kinds and types', '{{ kindOf 1 }} {{ kindOf 1.5 }} {{ kindOf nil }} {{ typeOf (index "a" 0) }} {{ kindOf (dict) }} {{ typeOf (splitList "," "a") }}'],
  ['seq and until edges', '{{ seq 5 1 }}|{{ seq 1 -2 -5 }}|{{ until -3 }}|{{ untilStep 5 0 -2 }}|{{ seq }}'],
  ['range with one variable over a map gets values', '{{ range $v := .m }}{{ $v }} {{ end }}', nested],
  ['missing keys inside range', '{{ range .objs }}[{{ .nope }}]{{ end }}', nested],
  ['with variable field', '{{ with $x := .a.b }}{{ $x.c }}{{ end }}', nested],
  ['template defined after use', '{{ template "later" . }}{{ define "later" }}later:{{ .num }}{{ end }}', nested],
  ['define and block of the same name', '{{ define "b" }}override{{ end }}{{ block "b" . }}default{{ end }}'],
  ['comment needs to touch the delimiters', '{{ /* not a comment */ }}'],
  ['CRLF and tabs trimmed', 'a\r\n\t{{- .str -}}\r\n\tb', nested],
  ['exec error column counts bytes', 'héllo wörld {{ .str.x }}', nested],
  ['exec error on line 3', 'one\ntwo\n  ✓ {{ index .list 9 }}', nested],
  ['parse error on line 3 inside a multi-line action', 'one\n{{ if\n  .a }}\n{{ nosuch }}{{ end }}', nested],

  // ---- sprig: URLs (net/url) ----
  ['urlParse parts', '{{ $u := urlParse "https://user:p%40ss@Registry.Example.com:8443/a%2Fb/c d?x=1&y=%20#frag%21" }}{{ $u.scheme }}|{{ $u.host }}|{{ $u.hostname }}|{{ $u.path }}|{{ $u.query }}|{{ $u.fragment }}|{{ $u.userinfo }}|{{ $u.opaque }}'],
  ['urlParse prints as a map', '{{ urlParse "http://c-npm.team.svc.cluster.local" }}'],
  ['urlParse of forms', '{{ range list "mailto:a@b.c" "/rel/path?q" "//host/x" "HTTP://UP.example/" "http://[::1]:8080/p" "http://h?" "http://h#" "http://h/%7Efoo" "*" "" "http://a:b:c@h/" "http://h:80:90/" }}[{{ $u := urlParse . }}{{ $u.scheme }} {{ $u.host }} {{ $u.hostname }} {{ $u.path }} {{ $u.opaque }} {{ $u.query }}]{{ end }}'],
  ['urlParse of an address with a path prefix', '{{ $r := urlParse "https://nexus.example.com/repository/npm-public/" }}//{{ $r.host }}/{{ trimSuffix "/" (trimPrefix "/" $r.path) }}/'],
  ['urlParse port defaulting as the SonarQube class', '{{ range list "http://p.local" "https://p.local" "http://p.local:8080" }}{{ $p := urlParse . }}{{ $port := splitList ":" $p.host | rest | first }}{{ if not $port }}{{ if eq $p.scheme "https" }}{{ $port = "443" }}{{ else }}{{ $port = "80" }}{{ end }}{{ end }}{{ $port }};{{ end }}'],
  ['urlParse error: bad escape', '{{ urlParse "http://h/%zz" }}'],
  ['urlParse error: bad port', '{{ urlParse "http://h:port/" }}'],
  ['urlParse error: control character', '{{ urlParse "http://h/\x01" }}'],
  ['urlParse error: missing scheme', '{{ urlParse ":foo" }}'],
  ['urlParse error: colon in first segment', '{{ urlParse "a:b/c" }}{{ urlParse "1a:b/c" }}'],
  ['urlParse error: bad host character', '{{ urlParse "http://h o/" }}'],
  ['urlParse error: missing bracket', '{{ urlParse "http://[::1/" }}'],
  ['urlParse error: bad userinfo', '{{ urlParse "http://a b@h/" }}'],
  ['urlParse of missing value is a type error', '{{ urlParse .nope }}', nested],
  ['urlJoin round trip', '{{ range list "https://user:p%40ss@h:8443/a%2Fb/c%20d?x=1#f%21" "mailto:x@y" "http://h/?" "/just/path" "http://[fe80::1%25en0]:80/" "http://h/%7Efoo" "http://h/a b" }}{{ urlJoin (urlParse .) }}|{{ end }}'],
  ['urlJoin from a dict', '{{ urlJoin (dict "scheme" "https" "host" "proxy.local:8443" "path" "/a b/ü" "query" "x=1" "fragment" "f g" "userinfo" "ns%2Fname:tok") }}|{{ urlJoin (dict "host" "h" "path" "p") }}|{{ urlJoin (dict "path" "a:b") }}|{{ urlJoin (dict) }}'],
  ['urlJoin with set', '{{ $u := urlParse "http://c-npm.team.svc/" }}{{ $_ := set $u "userinfo" "team%2Fnpm:tok" }}{{ $_ := set $u "path" "" }}{{ urlJoin $u }}'],
  ['urlJoin: a non-string part panics', '{{ urlJoin (dict "host" 1) }}'],
  ['urlJoin: a nil part panics', '{{ urlJoin (dict "path" nil) }}'],
  ['urlJoin: bad userinfo panics', '{{ urlJoin (dict "host" "h" "userinfo" "a b") }}'],
  ['urlJoin of a non-map is a type error', '{{ urlJoin "http://x" }}'],
  ['urlquery of a namespace/name (forward-proxy user)', '{{ printf "%s/%s" "team" "npm" | urlquery }} {{ printf "%s%%2F%s" "team" "npm" }}'],

  // ---- the seed's templates and realistic configuration files ----
  ['seed probe path', seedProbePath, probeData, PROBE_NAME],
  ['seed probe header with secret', seedProbeHeader, probeData, 'ConnectorClass git, spec.authProbes[0].probe.http.httpHeaders[0].value'],
  ['seed probe header without secret', seedProbeHeader, probeNoSecret, 'ConnectorClass git, spec.authProbes[0].probe.http.httpHeaders[0].value'],
  ['seed probe path without repository param', seedProbePath, { Connector: { Spec: { Auth: { Params: [] } } } }, PROBE_NAME],
  ['bearer header', 'Bearer {{ .Secret.StringData.token }}', probeData],
  ['seed .gitconfig', seedGitconfig, configData, CONFIG_NAME],
  ['brief .gitconfig', gitconfig, configData, CONFIG_NAME],
  ['.gitconfig with missing token', gitconfig, { connector: configData.connector }, CONFIG_NAME],
  ['docker config.json', dockerConfig, configData, 'ConnectorClass oci, spec.configurations[0].data["config.json"]'],
  ['.npmrc with trimming and range', npmrc, configData, 'ConnectorClass npm, spec.configurations[0].data[".npmrc"]'],
  ['labels as key=value', '{{ range $k, $v := .connector.metadata.labels }}{{ $k }}={{ $v }}\n{{ end }}', configData],
  ['generation is an integer', 'gen={{ .connector.metadata.generation }} {{ printf "%03d" .connector.metadata.generation }} {{ add .connector.metadata.generation 1 }}', configData],
  ['params lookup by name', '{{ range .connector.spec.params }}{{ if eq .name "sslVerify" }}sslVerify = {{ .value }}{{ end }}{{ end }}', configData],
  ['error in a configuration file names it', '[http]\n  extraHeader = {{ .context.token | b64enc | nosuchthing }}', configData, CONFIG_NAME],
  ['exec error on a later line names the position', '[url "{{ .connector.status.proxyAddress }}"]\n    insteadOf = {{ .connector.spec.address.host }}\n', configData, CONFIG_NAME],
];

/** Every template in the docs' classes, with the data the proxy renders it with. */
function docsTemplateRows(): Row[] {
  const out: Row[] = [];
  const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJidWlsZGVyIn0.c2ln';
  const secret: Secret = {
    apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tool-secret', namespace: 'team-a' }, type: 'kubernetes.io/basic-auth',
    data: { username: Buffer.from('alice').toString('base64'), password: Buffer.from('p@ss:wörd').toString('base64'), token: Buffer.from('tok-123').toString('base64') },
  };
  for (const e of docsExamples()) {
    if (e.object.kind !== 'ConnectorClass') continue;
    const cls = e.object as unknown as ConnectorClass;
    const where = `${e.source.split(' ')[0]} ${cls.metadata.name}`;
    const connectors: Connector[] = ['alpha', 'beta'].map((n, i) => ({
      apiVersion: 'connectors.alauda.io/v1alpha1', kind: 'Connector', metadata: { name: `${cls.metadata.name}-${n}`, namespace: 'team-a' },
      spec: {
        connectorClassName: cls.metadata.name, address: i === 0 ? 'https://tool.example.com/repository/npm-public' : 'http://tool2.example.com:8081',
        params: [{ name: 'sslVerify', value: 'false' }, { name: 'registryType', value: 'mirror' }],
        auth: { name: cls.spec?.auth?.types?.[0]?.name ?? 'basicAuth', secretRef: { name: 'tool-secret' }, params: [{ name: 'repository', value: 'org/repo.git' }] },
      },
    }));
    const targets: RenderTarget[] = connectors.map((c) => ({ connector: c, cls, proxyAddress: `http://c-${c.metadata.name}.team-a.svc.cluster.local` }));
    for (const conf of cls.spec?.configurations ?? []) {
      const params = Object.fromEntries((conf.params ?? []).map((p) => [p.name, `${p.name}-value`]));
      const data = configurationData(targets, { token, caPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', forwardProxy: 'http://connectors-proxy.connectors-system.svc:8080', params: { [conf.name]: params } }, conf);
      for (const [file, text] of Object.entries(conf.data ?? {})) {
        out.push([`docs template: ${where}, configuration ${conf.name}, ${file}`, text, data, `ConnectorClass ${cls.metadata.name}, spec.configurations[].data[${JSON.stringify(file)}]`]);
      }
    }
    const probeData = { Connector: goConnector(connectors[0]!), Secret: goSecret(secret) };
    const probes = [
      ...(cls.spec?.livenessProbe ? [['livenessProbe', cls.spec.livenessProbe] as const] : []),
      ...(cls.spec?.authProbes ?? []).map((p, i) => [`authProbes[${i}].probe`, p.probe ?? {}] as const),
    ];
    for (const [field, probe] of probes) {
      if (probe.http?.path) out.push([`docs template: ${where}, ${field}.http.path`, probe.http.path, probeData]);
      if (probe.api?.path) out.push([`docs template: ${where}, ${field}.api.path`, probe.api.path, probeData]);
      const headers = probe.http?.httpHeaders;
      const list = Array.isArray(headers) ? headers.map((h) => [h.name, h.value] as const) : Object.entries(headers ?? {});
      for (const [name, value] of list) out.push([`docs template: ${where}, ${field}.http.httpHeaders ${name}`, String(value), probeData]);
    }
  }
  return out;
}

export const TEMPLATE_CASES: readonly TemplateCase[] = [...rows, ...docsTemplateRows()].map(([what, template, data, name]) => ({
  what, template, data: data ?? null, name: name ?? `case ${what}`,
}));
