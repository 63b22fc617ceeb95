package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	account   = "AC0123456789abcdef0123456789abcdef"
	authToken = "authTokenNeverPrinted"
	keySid    = "SK0123456789abcdef0123456789abcdef"
	keySecret = "keySecretNeverPrinted"
	flow      = "FW0123456789abcdef0123456789abcdef"
)

// secrets must never appear in a manifest or on stderr.
var secrets = []string{account, authToken, keySid, keySecret}

type env struct {
	fake        *twiliofake.Server
	url         string
	conv        string
	service     string
	serviceConv string
	vars        map[string]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fake: twiliofake.New(), conv: twiliofake.NewSid("CH"), service: twiliofake.NewSid("IS"), serviceConv: twiliofake.NewSid("CH")}
	e.fake.AddAccount(account, authToken)
	e.fake.AddAPIKey(account, keySid, keySecret)
	e.fake.AddConversation(account, e.conv)
	e.fake.AddServiceConversation(account, e.service, e.serviceConv)
	srv := httptest.NewServer(e.fake)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.vars = map[string]string{envAccountSid: account, envAPIKey: keySid, envAPISecret: keySecret + "\n"}
	return e
}

// run runs the command with the fake's URL and returns its exit code, stdout and stderr.
func (e *env) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--twilio-api-url", e.url}, args...)
	code := run(context.Background(), args, func(k string) string { return e.vars[k] }, &stdout, &stderr)
	for _, s := range secrets {
		if strings.Contains(stdout.String(), s) || strings.Contains(stderr.String(), s) {
			t.Errorf("output shows %q\nstdout:\n%s\nstderr:\n%s", s, stdout.String(), stderr.String())
		}
	}
	return code, stdout.String(), stderr.String()
}

// documents splits a --- separated stream into objects.
func documents(t *testing.T, stream string) []*v1alpha1.ConversationWebhook {
	t.Helper()
	var out []*v1alpha1.ConversationWebhook
	for _, doc := range strings.Split(stream, "---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj := &v1alpha1.ConversationWebhook{}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%v:\n%s", err, doc)
		}
		out = append(out, obj)
	}
	return out
}

func TestStdout(t *testing.T) {
	e := newEnv(t)
	hook := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "webhook", URL: "https://hooks.example.com/w",
		Method: "post", Filters: []string{"onMessageAdded"}})
	trig := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "trigger", URL: "https://hooks.example.com/t",
		Method: "get", Filters: []string{"help"}})
	studio := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.serviceConv, Target: "studio", FlowSid: flow})

	// Flags after the scopes work too.
	code, stdout, stderr := e.run(t, e.conv, e.service+"/"+e.serviceConv, "--namespace", "support")
	if code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	objs := documents(t, stdout)
	if len(objs) != 3 {
		t.Fatalf("%d manifests, want 3:\n%s", len(objs), stdout)
	}
	for i, sid := range []string{hook, trig, studio} {
		o := objs[i]
		if o.Annotations[v1alpha1.AnnotationWebhookSid] != sid || o.Name != "wh-"+strings.ToLower(sid) || o.Namespace != "support" {
			t.Errorf("manifest %d: %s/%s %v, want %s", i, o.Namespace, o.Name, o.Annotations, sid)
		}
		if o.Spec.ManagementPolicy != v1alpha1.ManagementPolicyObserve || o.Spec.DeletionPolicy != v1alpha1.DeletionPolicyOrphan {
			t.Errorf("manifest %d: policies %s/%s, want Observe/Orphan", i, o.Spec.ManagementPolicy, o.Spec.DeletionPolicy)
		}
	}
	if got := objs[1].Spec; got.Method != v1alpha1.MethodGET || strings.Join(got.Triggers, ",") != "help" || got.Filters != nil {
		t.Errorf("trigger spec = %+v, want GET and the keyword read from filters", got)
	}
	if got := objs[2].Spec; got.ServiceSid != e.service || got.ConversationSid != e.serviceConv || got.FlowSid != flow {
		t.Errorf("studio spec = %+v", got)
	}
	if !strings.Contains(stderr, "3 manifest(s) written, 0 webhook(s) refused") {
		t.Errorf("stderr = %s", stderr)
	}
	if strings.Contains(stdout, "replayAfter") || strings.Contains(stdout, "status") {
		t.Errorf("manifest carries fields Twilio did not return:\n%s", stdout)
	}
}

func TestOutDir(t *testing.T) {
	e := newEnv(t)
	sids := []string{
		e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "studio", FlowSid: flow}),
		e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "trigger", URL: "https://hooks.example.com/t", Triggers: []string{"a"}}),
	}
	dir := filepath.Join(t.TempDir(), "imported")
	code, stdout, stderr := e.run(t, "--out", dir, "--manage", e.conv)
	if code != exitOK || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(sids) {
		t.Fatalf("%d files, want %d", len(entries), len(sids))
	}
	for _, sid := range sids {
		data, err := os.ReadFile(filepath.Join(dir, "wh-"+strings.ToLower(sid)+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs := documents(t, string(data))
		if len(objs) != 1 || objs[0].Annotations[v1alpha1.AnnotationWebhookSid] != sid ||
			objs[0].Spec.ManagementPolicy != v1alpha1.ManagementPolicyFull || objs[0].Spec.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
			t.Errorf("file of %s:\n%s", sid, data)
		}
	}

	if code, _, stderr := e.run(t, "--out", dir, e.conv); code != exitUsage || !strings.Contains(stderr, "--force") {
		t.Errorf("second run without --force: exit %d, stderr:\n%s", code, stderr)
	}
	if code, _, stderr := e.run(t, "--out", dir, "--force", e.conv); code != exitOK {
		t.Errorf("second run with --force: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	bad := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "webhook", URL: "https://hooks.example.com/w",
		Filters: []string{"onMessageAdded", "onTypingStarted"}})
	many := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "trigger", URL: "https://hooks.example.com/t",
		Triggers: []string{"a", "b", "c", "d", "e", "f"}})
	good := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "studio", FlowSid: flow})

	code, stdout, stderr := e.run(t, e.conv)
	if code != exitIncomplete {
		t.Errorf("exit %d, want %d", code, exitIncomplete)
	}
	objs := documents(t, stdout)
	if len(objs) != 1 || objs[0].Annotations[v1alpha1.AnnotationWebhookSid] != good {
		t.Errorf("manifests:\n%s\nwant only %s", stdout, good)
	}
	for _, want := range []string{
		"refused " + bad + " (conversation " + e.conv + "): spec.filters[1]: \"onTypingStarted\"",
		"refused " + many + " (conversation " + e.conv + "): spec.triggers: has 6 keywords",
		"1 manifest(s) written, 2 webhook(s) refused",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestScopeFile(t *testing.T) {
	e := newEnv(t)
	sid := e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.serviceConv, Target: "studio", FlowSid: flow})
	dir := t.TempDir()
	good := filepath.Join(dir, "conversations.txt")
	content := "# support conversations\n\n" + e.service + "/" + e.serviceConv + "  # service-scoped\n" + e.conv + "\n"
	if err := os.WriteFile(good, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := e.run(t, "--file", good)
	if code != exitOK || len(documents(t, stdout)) != 1 || !strings.Contains(stdout, sid) {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte(e.conv+"\n"+e.conv+"/../../x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetLog()
	code, _, stderr = e.run(t, "--file", bad)
	if code != exitUsage || !strings.Contains(stderr, "bad.txt:2:") || len(e.fake.Requests()) != 0 {
		t.Errorf("exit %d after %d requests, stderr:\n%s", code, len(e.fake.Requests()), stderr)
	}
	for _, args := range [][]string{{}, {"CH123"}, {"IS" + strings.Repeat("0", 32) + "/" + "CH1"}} {
		if code, _, stderr := e.run(t, args...); code != exitUsage || len(e.fake.Requests()) != 0 {
			t.Errorf("%v: exit %d after %d requests, stderr:\n%s", args, code, len(e.fake.Requests()), stderr)
		}
	}
}

func TestCredentialsFile(t *testing.T) {
	e := newEnv(t)
	e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "studio", FlowSid: flow})
	e.vars = map[string]string{envAccountSid: "AC" + strings.Repeat("f", 32), envAuthToken: "ignored"}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	files := map[string]string{
		"secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: twilio\ntype: Opaque\ndata:\n" +
			"  accountSid: " + b64(account+"\n") + "\n  apiKeySid: " + b64(keySid) + "\n  apiKeySecret: " + b64(" "+keySecret+"\n") + "\n",
		"secret.json": `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"twilio"},"stringData":{"accountSid":"` + account +
			`","authToken":"` + authToken + `\n"}}`,
		"two-docs.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\napiVersion: v1\nkind: Secret\nstringData:\n" +
			"  accountSid: " + account + "\n  authToken: " + authToken + "\n",
		"twilio.env":           "# from the console\nexport accountSid=" + account + "\napiKeySid='" + keySid + "'\napiKeySecret=\"" + keySecret + "\"\n",
		"twilio-env-names.env": "TWILIO_ACCOUNT_SID=" + account + "\nTWILIO_AUTH_TOKEN=" + authToken + "\n",
	}
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, stdout, stderr := e.run(t, "--credentials-file", path, e.conv); code != exitOK || len(documents(t, stdout)) != 1 {
			t.Errorf("%s: exit %d, stderr:\n%s", name, code, stderr)
		}
	}
}

func TestCredentialErrorsShowNoSecret(t *testing.T) {
	e := newEnv(t)
	e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "studio", FlowSid: flow})
	cases := []struct {
		name string
		vars map[string]string
		code int
		want string
	}{
		{"nothing", map[string]string{}, exitUsage, "accountSid is missing"},
		{"key without secret", map[string]string{envAccountSid: account, envAPIKey: keySid}, exitUsage, "apiKeySecret is missing"},
		{"wrong secret", map[string]string{envAccountSid: account, envAPIKey: keySid, envAPISecret: keySecret + "x"}, exitIncomplete, "HTTP 401"},
		{"wrong token", map[string]string{envAccountSid: account, envAuthToken: authToken + "x"}, exitIncomplete, "HTTP 401"},
	}
	for _, tc := range cases {
		e.vars = tc.vars
		code, stdout, stderr := e.run(t, e.conv)
		if code != tc.code || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s", tc.name, code, stdout, stderr)
		}
		if strings.Contains(stderr, authToken+"x") || strings.Contains(stderr, keySecret+"x") {
			t.Errorf("%s: stderr shows the wrong secret:\n%s", tc.name, stderr)
		}
	}

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--twilio-api-url", "ftp://u:" + keySecret + "@x", e.conv}, func(string) string { return "" }, io.Discard, &stderr)
	if code != exitUsage || strings.Contains(stderr.String(), keySecret) {
		t.Errorf("API URL with a password: exit %d, stderr:\n%s", code, stderr.String())
	}

	bad := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(bad, []byte("kind: Secret\ndata: [ "+keySecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := e.run(t, "--credentials-file", bad, e.conv); code != exitUsage || !strings.Contains(stderr, "broken.yaml") {
		t.Errorf("broken file: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestURLWithPasswordWarns(t *testing.T) {
	e := newEnv(t)
	e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "webhook", URL: "https://bot:hunter2@hooks.example.com/w",
		Filters: []string{"onMessageAdded"}})
	code, stdout, stderr := e.run(t, e.conv)
	if code != exitOK || !strings.Contains(stdout, "hunter2") {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout)
	}
	if !strings.Contains(stderr, "spec.url carries a user name or password") || strings.Contains(stderr, "hunter2") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &stdout, &stderr)
	if code != exitOK {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"managementPolicy: Observe", "deletionPolicy: Orphan", "--manage", "TWILIO_AUTH_TOKEN",
		"-credentials-file", "-twilio-api-url", "-out", "-name-prefix", "-namespace", "Exit status", "IS…/CH…", "refuse"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestAccountFlag(t *testing.T) {
	e := newEnv(t)
	e.fake.CreateWebhook(twiliofake.Webhook{ConversationSid: e.conv, Target: "webhook", URL: "https://hooks.example.com/w",
		Method: "post", Filters: []string{"onMessageAdded"}})
	for _, tc := range []struct {
		flag string
		want *v1alpha1.AccountReference
		code int
	}{
		{"", nil, exitOK},
		{"team-a", &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindNamespaced, Name: "team-a"}, exitOK},
		{"ClusterTwilioAccount/shared", &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindCluster, Name: "shared"}, exitOK},
		{"Secret/x", nil, exitUsage},
		{"Not_A_Name", nil, exitUsage},
	} {
		args := []string{e.conv}
		if tc.flag != "" {
			args = append(args, "--account", tc.flag)
		}
		code, stdout, stderr := e.run(t, args...)
		if code != tc.code {
			t.Fatalf("--account %q: exit %d, want %d; stderr:\n%s", tc.flag, code, tc.code, stderr)
		}
		if code != exitOK {
			continue
		}
		got := documents(t, stdout)[0].Spec.AccountRef
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("--account %q: accountRef %+v, want %+v", tc.flag, got, tc.want)
		}
	}
}
