// Reference for the Go engines the proxy mirrors: Go's text/template with sprig (the engine
// src/templates/ must match, test/templates.test.ts) and cel-go (probe response checks,
// src/status/cel.ts, test/cel.test.ts). Reads a JSON array of {name, template, data} or
// {cel, response} on stdin and writes a JSON array of {output} or {error}, one per case, in
// order; a CEL result is written as Go's %v of the value ("true", "false", ...).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"github.com/google/cel-go/cel"
)

type testCase struct {
	Name     string          `json:"name"`
	Template string          `json:"template"`
	Data     json.RawMessage `json:"data"`
	// A CEL case: the expression and the probed answer it sees.
	Cel      *string        `json:"cel,omitempty"`
	Response *probeResponse `json:"response,omitempty"`
}

type probeResponse struct {
	StatusCode int                 `json:"statusCode"`
	Headers    map[string][]string `json:"headers"`
	Body       string              `json:"body"`
}

// celEnv declares what connectorclass.mdx lists (response.statusCode, bodyString, headers,
// body) and the top-level names the docs' SonarQube class uses (statusCode, bodyJSON).
func celEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("response", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("statusCode", cel.IntType),
		cel.Variable("bodyString", cel.StringType),
		cel.Variable("headers", cel.MapType(cel.StringType, cel.ListType(cel.StringType))),
		cel.Variable("body", cel.DynType),
		cel.Variable("bodyJSON", cel.DynType),
	)
}

func evalCel(expr string, r *probeResponse) (string, error) {
	env, err := celEnv()
	if err != nil {
		return "", err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return "", iss.Err()
	}
	prg, err := env.Program(ast)
	if err != nil {
		return "", err
	}
	// Header names as Go's http.Header holds them (canonical), plus lower-case: both spellings work.
	headers := map[string][]string{}
	for k, v := range r.Headers {
		headers[http.CanonicalHeaderKey(k)] = v
		headers[strings.ToLower(k)] = v
	}
	var body interface{} = map[string]interface{}{}
	if strings.TrimSpace(r.Body) != "" {
		var parsed interface{}
		if json.Unmarshal([]byte(r.Body), &parsed) == nil {
			body = parsed
		}
	}
	status := int64(r.StatusCode)
	out, _, err := prg.Eval(map[string]interface{}{
		"response":   map[string]interface{}{"statusCode": status, "bodyString": r.Body, "headers": headers, "body": body},
		"statusCode": status, "bodyString": r.Body, "headers": headers, "body": body, "bodyJSON": body,
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%v", out.Value()), nil
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

// decode keeps JSON integers as int64 and other numbers as float64, as Kubernetes'
// unstructured converter does, so %d and integer comparisons behave as they do on objects.
func decode(raw json.RawMessage) (interface{}, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return convert(v), nil
}

func convert(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, e := range t {
			t[k] = convert(e)
		}
		return t
	case []interface{}:
		for i, e := range t {
			t[i] = convert(e)
		}
		return t
	case json.Number:
		if !strings.ContainsAny(t.String(), ".eE") {
			if i, err := t.Int64(); err == nil {
				return i
			}
		}
		f, _ := t.Float64()
		return f
	default:
		return v
	}
}

// funcs is sprig plus Helm's `required`, which ConnectorClass authors use as if it were sprig.
func funcs() template.FuncMap {
	m := sprig.TxtFuncMap()
	m["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warn)
		} else if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warn)
		}
		return val, nil
	}
	return m
}

func render(c testCase) (string, error) {
	data, err := decode(c.Data)
	if err != nil {
		return "", fmt.Errorf("bad case data: %w", err)
	}
	tmpl, err := template.New(c.Name).Funcs(funcs()).Parse(c.Template)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return "", err
	}
	return out.String(), nil
}

func main() {
	var cases []testCase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		fmt.Fprintln(os.Stderr, "reading cases:", err)
		os.Exit(2)
	}
	results := make([]result, len(cases))
	for i, c := range cases {
		var out string
		var err error
		if c.Cel != nil {
			out, err = evalCel(*c.Cel, c.Response)
		} else {
			out, err = render(c)
		}
		if err != nil {
			msg := err.Error()
			results[i].Error = &msg
		} else {
			results[i].Output = &out
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, "writing results:", err)
		os.Exit(2)
	}
}
