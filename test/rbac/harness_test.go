package rbac

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// refusal is one request the API server answered 403 Forbidden.
type refusal struct {
	Verb, Group, Resource string
}

func (op *operator) forbidden() []refusal {
	op.mu.Lock()
	defer op.mu.Unlock()
	return slices.Clone(op.refused)
}

// recordRefusals wraps the manager's transport (every client it builds: cache,
// client, API reader, leader election, events) and records each 403 answer.
func (op *operator) recordRefusals(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			return resp, err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		r := refusalOf(req)
		op.mu.Lock()
		if !slices.Contains(op.refused, r) {
			op.refused = append(op.refused, r)
			logs.printf("403 for %+v: %.300q", r, body)
		}
		op.mu.Unlock()
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// refusalOf reads verb, group and resource (with its subresource) from a
// request's method and path, as the API server's authorizer does.
func refusalOf(req *http.Request) refusal {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var r refusal
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		r.Group, parts = parts[1], parts[3:]
	default:
		return refusal{Verb: req.Method, Resource: req.URL.Path}
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return refusal{Verb: req.Method, Resource: req.URL.Path}
	}
	r.Resource = parts[0]
	named := len(parts) > 1
	if len(parts) > 2 {
		r.Resource += "/" + parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			r.Verb = "watch"
		case named:
			r.Verb = "get"
		default:
			r.Verb = "list"
		}
	case http.MethodPost:
		r.Verb = "create"
	case http.MethodPut:
		r.Verb = "update"
	case http.MethodPatch:
		r.Verb = "patch"
	case http.MethodDelete:
		r.Verb = "delete"
	default:
		r.Verb = req.Method
	}
	return r
}

// read decodes one manifest of config/rbac.
func read(t *testing.T, file string, into client.Object) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(rbacDir, file))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(data, []byte("---\n")), into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// withoutVerb removes verb from every rule that grants it on group/resource,
// splitting a rule that covers other groups or resources too, and fails the
// test if no rule granted it: an entry that removes nothing proves nothing.
func withoutVerb(t *testing.T, rules []rbacv1.PolicyRule, group, resource, verb string) []rbacv1.PolicyRule {
	t.Helper()
	var out []rbacv1.PolicyRule
	removed := false
	for _, rule := range rules {
		if !slices.Contains(rule.APIGroups, group) || !slices.Contains(rule.Resources, resource) || !slices.Contains(rule.Verbs, verb) {
			out = append(out, rule)
			continue
		}
		removed = true
		// The rule without the verb for this group and resource ...
		narrowed := *rule.DeepCopy()
		narrowed.APIGroups, narrowed.Resources = []string{group}, []string{resource}
		narrowed.Verbs = slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v == verb })
		if len(narrowed.Verbs) > 0 {
			out = append(out, narrowed)
		}
		// ... and unchanged for the other groups and resources it covers.
		if others := slices.DeleteFunc(slices.Clone(rule.APIGroups), func(g string) bool { return g == group }); len(others) > 0 {
			r := *rule.DeepCopy()
			r.APIGroups = others
			out = append(out, r)
		}
		if others := slices.DeleteFunc(slices.Clone(rule.Resources), func(r string) bool { return r == resource }); len(others) > 0 {
			r := *rule.DeepCopy()
			r.APIGroups, r.Resources = []string{group}, others
			out = append(out, r)
		}
	}
	if !removed {
		t.Fatalf("no rule grants %s on %s in group %q: the table is out of date with config/rbac", verb, resource, group)
	}
	return out
}

// testLog sends the managers' logs to the running test's log (shown with -v
// or on failure), and drops what arrives after that test ended.
type testLog struct {
	mu sync.Mutex
	t  *testing.T
}

func (l *testLog) attach(t *testing.T) {
	l.mu.Lock()
	l.t = t
	l.mu.Unlock()
	t.Cleanup(func() {
		l.mu.Lock()
		l.t = nil
		l.mu.Unlock()
	})
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(l, format, args...)
}
