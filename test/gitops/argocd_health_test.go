// Package gitops tests what GitOps tools see of a ConversationWebhook: the Argo
// CD health check, run in gopher-lua as Argo CD runs it.
package gitops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	sigsyaml "sigs.k8s.io/yaml"
)

// health runs docs/argocd/health.lua over an object, as Argo CD does: the object
// is the global obj, the script returns {status, message}.
func health(t *testing.T, object map[string]interface{}) (string, string) {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("..", "..", "docs", "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	L := lua.NewState(lua.Options{SkipOpenLibs: false})
	defer L.Close()
	L.SetGlobal("obj", toLua(L, object))
	if err := L.DoString(string(script)); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %v, not a table", L.Get(-1))
	}
	return ret.RawGetString("status").String(), ret.RawGetString("message").String()
}

// toLua converts decoded JSON to Lua values the way Argo CD's converter does.
func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case map[string]interface{}:
		t := L.NewTable()
		for k, val := range x {
			t.RawSetString(k, toLua(L, val))
		}
		return t
	case []interface{}:
		t := L.NewTable()
		for _, val := range x {
			t.Append(toLua(L, val))
		}
		return t
	case string:
		return lua.LString(x)
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case nil:
		return lua.LNil
	default:
		panic("unexpected type")
	}
}

func TestArgoCDHealth(t *testing.T) {
	cases := []struct {
		fixture, status, message string
	}{
		{"ready.yaml", "Healthy", "matches the spec"},
		{"new.yaml", "Progressing", "Waiting for the operator"},
		{"spec-changed.yaml", "Progressing", "generation 3"},
		{"retrying.yaml", "Progressing", "Creating: Retrying after a transient failure"},
		{"stalled.yaml", "Degraded", "CredentialsInvalid: twilio create: HTTP 401, error 20003"},
		{"paused-annotation.yaml", "Suspended", "paused"},
		{"paused-condition.yaml", "Suspended", "paused"},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.fixture))
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]interface{}
			if err := sigsyaml.Unmarshal(data, &obj); err != nil {
				t.Fatal(err)
			}
			status, message := health(t, obj)
			if status != tc.status || !strings.Contains(message, tc.message) {
				t.Fatalf("health = %s %q, want %s containing %q", status, message, tc.status, tc.message)
			}
		})
	}
}
