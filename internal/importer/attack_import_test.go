package importer

// Attack tests for cwh-import's importer: hostile or odd Twilio answers, YAML
// that kubectl would read differently, pagination, proxies and 429s.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// kubectlDocs splits a stream as kubectl apply -f does (YAMLReader on ---
// lines) and decodes each non-empty document.
func kubectlDocs(t *testing.T, stream []byte) []map[string]interface{} {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var out []map[string]interface{}
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("kubectl cannot split the stream: %v\n%s", err, stream)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		m := map[string]interface{}{}
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("kubectl cannot read a document: %v\n%s", err, doc)
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
}

// TestAttackYAMLOddStringsRoundTrip: a trigger keyword or url Twilio holds is
// written so that kubectl reads back exactly one document with exactly that
// value, and the manifest the CRD would admit is the one written.
func TestAttackYAMLOddStringsRoundTrip(t *testing.T) {
	keywords := []string{
		"help\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: x",
		"\n---\n", "---", "...", "key: value", "- item", "# comment", "&anchor", "*alias", "!!binary", "%YAML 1.2",
		"'quoted'", `"dq"`, "yes", "no", "on", "off", "y", "n", "null", "~", "true", "0x1F", "1e3", "012", ".inf", "<<",
		"  padded  ", "tab\there", "cr\rhere", "crlf\r\nhere", "nel\u0085here", "ls\u2028here", "ps\u2029here",
		"bom\ufeffhere", "emoji 🚨", "ümlaut", "trailing\n", "\nleading", "[a, b]", "{a: b}", "@at", "`tick`", "|", ">",
		"a: b\n  c: d", strings.Repeat("long ", 49) + "end",
	}
	urls := []string{
		`https://hooks.example.com/a"b`, "https://hooks.example.com/a'b", "https://hooks.example.com/a #b",
		"https://hooks.example.com/a: b", "https://hooks.example.com/ümlaut", "https://bücher.example/x",
		"https://hooks.example.com/a\u0085b", "https://hooks.example.com/a\u2028b", "https://hooks.example.com/?q=---",
		"HTTPS://HOOKS.EXAMPLE.COM/UPPER", "https://hooks.example.com/a%20b", "https://[::1]:8443/x",
	}
	crd := loadCRD(t)
	for i, kw := range keywords {
		wh := twilio.Webhook{Sid: fmt.Sprintf("WH%032x", i), Target: "trigger",
			Configuration: twilio.Configuration{URL: "https://hooks.example.com/t", Triggers: []string{kw}}}
		obj, refusal := Manifest(twilio.Scope{ConversationSid: testConv}, wh, Options{})
		if refusal != nil {
			t.Logf("keyword %q refused: %s", kw, refusal)
			continue
		}
		data, err := YAML(obj)
		if err != nil {
			t.Fatal(err)
		}
		stream := append([]byte("---\n"), data...)
		docs := kubectlDocs(t, stream)
		if len(docs) != 1 {
			t.Errorf("keyword %q: kubectl reads %d documents:\n%s", kw, len(docs), stream)
			continue
		}
		var back v1alpha1.ConversationWebhook
		if err := yaml.UnmarshalStrict(data, &back); err != nil {
			t.Errorf("keyword %q: %v", kw, err)
			continue
		}
		if len(back.Spec.Triggers) != 1 || back.Spec.Triggers[0] != kw {
			t.Errorf("keyword %q: kubectl reads triggers %q (Twilio holds %q):\n%s", kw, back.Spec.Triggers, kw, data)
		}
		if errs := crd.admit(t, data); len(errs) > 0 {
			t.Errorf("keyword %q: written, but the CRD rejects it: %v", kw, errs.ToAggregate())
		}
	}
	for i, u := range urls {
		wh := twilio.Webhook{Sid: fmt.Sprintf("WH%032x", 1000+i), Target: "webhook",
			Configuration: twilio.Configuration{URL: u, Filters: []string{"onMessageAdded"}}}
		obj, refusal := Manifest(twilio.Scope{ConversationSid: testConv}, wh, Options{})
		spec := SpecOf(twilio.Scope{ConversationSid: testConv}, wh)
		spec.ManagementPolicy, spec.DeletionPolicy = v1alpha1.ManagementPolicyObserve, v1alpha1.DeletionPolicyOrphan
		crdErrs := crd.admitSpec(t, spec)
		if refusal != nil {
			if len(crdErrs) == 0 && !strings.Contains(refusal.String(), "YAML") {
				t.Errorf("url %q: refused (%s), but the CRD admits it: a webhook left behind", u, refusal)
			}
			continue
		}
		data, err := YAML(obj)
		if err != nil {
			t.Fatal(err)
		}
		if docs := kubectlDocs(t, append([]byte("---\n"), data...)); len(docs) != 1 {
			t.Errorf("url %q: %d documents", u, len(docs))
		}
		var back v1alpha1.ConversationWebhook
		if err := yaml.UnmarshalStrict(data, &back); err != nil {
			t.Errorf("url %q: %v", u, err)
			continue
		}
		if back.Spec.URL != u {
			t.Errorf("url %q: kubectl reads url %q:\n%s", u, back.Spec.URL, data)
		}
		if errs := crd.admit(t, data); len(errs) > 0 {
			t.Errorf("url %q: written, but the CRD rejects the manifest: %v\n%s", u, errs.ToAggregate(), data)
		}
	}
}

// rawAPI is our real client pointed at handler, with the fake's API key.
func rawAPI(t *testing.T, handler http.HandlerFunc, opts twilio.Options) twilio.WebhookAPI {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL
	if opts.BackoffBase == 0 {
		opts.BackoffBase = time.Millisecond
	}
	return clientFor(t, opts)
}

func hookJSON(sid, conv string) string {
	return fmt.Sprintf(`{"sid":%q,"account_sid":%q,"conversation_sid":%q,"target":"studio","url":"x","configuration":{"flow_sid":%q}}`,
		sid, fakeAccount, conv, testFlow)
}

// TestAttackNonTwilioJSONListIsAnError: a proxy or a wrong --twilio-api-url
// that answers 200 with JSON that is not a Twilio list page ({} or an
// unrelated object) must not read as "this conversation has no webhooks":
// cwh-import would exit 0 having written nothing for webhooks that exist.
func TestAttackNonTwilioJSONListIsAnError(t *testing.T) {
	for _, body := range []string{`{}`, `{"status":"ok"}`, `{"webhooks":null}`, `[]`} {
		t.Run(body, func(t *testing.T) {
			api := rawAPI(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, body)
			}, twilio.Options{MaxAttempts: 1})
			objs, refusals, err := Manifests(context.Background(), api, []twilio.Scope{{ConversationSid: testConv}}, Options{})
			if err == nil {
				t.Errorf("200 %s read as a conversation without webhooks: %d objects, %d refusals, no error", body, len(objs), len(refusals))
			}
		})
	}
}

// TestAttackHTMLProxyAnswer: HTML (200, 404, 502) is an error, never an empty
// conversation, and the error shows no credential.
func TestAttackHTMLProxyAnswer(t *testing.T) {
	for _, status := range []int{200, 404, 502} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			api := rawAPI(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, "<html><body>Sign in "+r.Header.Get("Authorization")+"</body></html>")
			}, twilio.Options{MaxAttempts: 2})
			objs, _, err := Manifests(context.Background(), api, []twilio.Scope{{ConversationSid: testConv}}, Options{})
			if err == nil || len(objs) != 0 {
				t.Fatalf("HTML %d: %d objects, error %v", status, len(objs), err)
			}
			for _, s := range []string{fakeKeySecret, fakeKeySid, "Basic "} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error shows %q: %v", s, err)
				}
			}
		})
	}
}

// TestAttackPagination: a conversation with more webhooks than one page (5)
// yields every one.
func TestAttackPagination(t *testing.T) {
	f := newFakeTwilio(t)
	var want []string
	for i := 0; i < 12; i++ {
		want = append(want, f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "studio", FlowSid: testFlow}))
	}
	objs, refusals, err := Manifests(context.Background(), f.api(t), []twilio.Scope{{ConversationSid: f.conv}}, Options{})
	if err != nil || len(refusals) != 0 || len(objs) != len(want) {
		t.Fatalf("%d objects (want %d), refusals %v, error %v", len(objs), len(want), refusals, err)
	}
	if c := f.Counts()[twiliofake.OpList]; c != 3 {
		t.Errorf("%d list requests, want 3", c)
	}
}

// TestAttackHostileNextPage: a next_page_url naming another host is sent to
// the configured API host (credentials never go elsewhere); one that loops
// ends with an error, not an endless import.
func TestAttackHostileNextPage(t *testing.T) {
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("credentials sent to the host next_page_url named: %s %q", r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	sid := "WH" + strings.Repeat("d", 32)
	api := rawAPI(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"webhooks":[%s],"meta":{"next_page_url":%q}}`, hookJSON(sid, testConv),
			other.URL+"/v1/Conversations/"+testConv+"/Webhooks?Page=1")
	}, twilio.Options{RequestsPerSecond: 1000, Burst: 100})
	objs, _, err := Manifests(context.Background(), api, []twilio.Scope{{ConversationSid: testConv}}, Options{})
	if err == nil {
		t.Errorf("endless paging: %d objects, no error after %d requests", len(objs), hits.Load())
	}
	t.Logf("loop ended after %d requests: %v", hits.Load(), err)
}

// TestAttack429: Twilio's 429 with a short Retry-After is waited out; one
// longer than the client waits fails that conversation only, and the others
// are still imported.
func TestAttack429(t *testing.T) {
	other := "CH" + strings.Repeat("e", 32)
	var n atomic.Int32
	api := rawAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(r.URL.Path, testConv) && n.Add(1) <= 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			_, _ = io.WriteString(w, `{"code":20429,"message":"Too Many Requests","status":429}`)
		case strings.Contains(r.URL.Path, other):
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(429)
			_, _ = io.WriteString(w, `{"code":20429,"message":"Too Many Requests","status":429}`)
		default:
			_, _ = fmt.Fprintf(w, `{"webhooks":[%s],"meta":{"next_page_url":null}}`, hookJSON("WH"+strings.Repeat("1", 32), testConv))
		}
	}, twilio.Options{})
	start := time.Now()
	objs, _, err := Manifests(context.Background(), api, []twilio.Scope{{ConversationSid: other}, {ConversationSid: testConv}}, Options{})
	if len(objs) != 1 || err == nil || !strings.Contains(err.Error(), other) {
		t.Errorf("objects %d, error %v; want the retried conversation imported and %s named", len(objs), err, other)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestAttackReplayAfterZero: replay_after 0 is a value: written as
// replayAfter: 0, so the operator does not see it as unset.
func TestAttackReplayAfterZero(t *testing.T) {
	wh := twilio.Webhook{Sid: "WH" + strings.Repeat("2", 32), Target: "webhook", Configuration: twilio.Configuration{
		URL: "https://hooks.example.com/w", Filters: []string{"onMessageAdded"}, ReplayAfter: ptr.To[int32](0)}}
	obj, refusal := Manifest(twilio.Scope{ConversationSid: testConv}, wh, Options{})
	if refusal != nil {
		t.Fatal(refusal)
	}
	data, _ := YAML(obj)
	if !strings.Contains(string(data), "replayAfter: 0") {
		t.Errorf("replayAfter 0 dropped:\n%s", data)
	}
}

// TestAttackFlowSidCase: a flow SID whose prefix is lower case is refused (the
// CRD's pattern); upper-case hex digits are kept as Twilio answered.
func TestAttackFlowSidCase(t *testing.T) {
	crd := loadCRD(t)
	for _, flow := range []string{"fw" + strings.Repeat("c", 32), "FW" + strings.Repeat("C", 32), "FW" + strings.Repeat("c", 31)} {
		wh := twilio.Webhook{Sid: "WH" + strings.Repeat("3", 32), Target: "studio", Configuration: twilio.Configuration{FlowSid: flow}}
		obj, refusal := Manifest(twilio.Scope{ConversationSid: testConv}, wh, Options{})
		spec := SpecOf(twilio.Scope{ConversationSid: testConv}, wh)
		crdOK := len(crd.admitSpec(t, spec)) == 0
		if (refusal == nil) != crdOK {
			t.Errorf("flow %q: refused %v, CRD admits %v", flow, refusal != nil, crdOK)
		}
		if obj != nil && obj.Spec.FlowSid != flow {
			t.Errorf("flow %q written as %q", flow, obj.Spec.FlowSid)
		}
	}
}

// TestAttackYAMLEveryRune: every rune of Latin-1, the general punctuation
// block and the specials, inside, at the start and at the end of a trigger
// keyword, either reads back from the manifest as written or is refused,
// named, for YAML's sake (C1 controls and DEL cannot be written; U+0085 reads
// back as a space): never written as something else.
func TestAttackYAMLEveryRune(t *testing.T) {
	var bad []string
	var runes []rune
	for _, span := range [][2]rune{{0, 0x2FF}, {0x2000, 0x206F}, {0xFEFF, 0xFEFF}, {0xFFF0, 0xFFFF}} {
		for r := span[0]; r <= span[1]; r++ {
			runes = append(runes, r)
		}
	}
	scope := twilio.Scope{ConversationSid: testConv}
	for _, r := range runes {
		for _, kw := range []string{"a" + string(r) + "b", string(r) + "a", "a" + string(r)} {
			wh := twilio.Webhook{Sid: "WH" + strings.Repeat("7", 32), Target: "trigger",
				Configuration: twilio.Configuration{URL: "https://hooks.example.com/t", Triggers: []string{kw}}}
			obj, refusal := Manifest(scope, wh, Options{})
			if refusal != nil {
				if unicode.IsLetter(r) || unicode.IsDigit(r) {
					bad = append(bad, fmt.Sprintf("%U in %q refused: %s", r, kw, refusal))
					break
				}
				continue // Validate's rules, or YAML's: named either way
			}
			data, err := YAML(obj)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%U: %v", r, err))
				break
			}
			var back v1alpha1.ConversationWebhook
			if err := yaml.Unmarshal(data, &back); err != nil || len(back.Spec.Triggers) != 1 || back.Spec.Triggers[0] != kw {
				bad = append(bad, fmt.Sprintf("%U in %q → %q (%v)", r, kw, back.Spec.Triggers, err))
				break
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d runes are written as something else, or not at all:\n%s", len(bad), strings.Join(bad, "\n"))
	}
}

// TestAttackUnrenderableWebhookIsRefused: a webhook Manifests returns must
// render. A C1 control character (U+0080–U+009F, e.g. Windows-1252 text read
// as Latin-1) in a keyword or url passes Validate and the CRD, but YAML fails
// on it; cwh-import then stops writing at that webhook (exit 2), and every
// webhook listed after it is missing from the output without a refusal.
func TestAttackUnrenderableWebhookIsRefused(t *testing.T) {
	scope := twilio.Scope{ConversationSid: testConv}
	hooks := []twilio.Webhook{
		{Sid: "WH" + strings.Repeat("4", 32), Target: "trigger", Configuration: twilio.Configuration{
			URL: "https://hooks.example.com/t", Triggers: []string{"caf\u0082"}}},
		{Sid: "WH" + strings.Repeat("5", 32), Target: "webhook", Configuration: twilio.Configuration{
			URL: "https://hooks.example.com/\u0090", Filters: []string{"onMessageAdded"}}},
	}
	crd := loadCRD(t)
	objs, refusals, err := Manifests(context.Background(), listAPI{scope: hooks}, []twilio.Scope{scope}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if _, err := YAML(o); err != nil {
			errs := admitJSON(t, crd, o)
			t.Errorf("%s returned as importable (the CRD, sent JSON as kubectl does, finds %d errors), but YAML fails: %v", o.Name, len(errs), err)
		}
	}
	// Both are refused, each naming the field YAML cannot hold: none is lost
	// silently, none written as something else.
	if len(objs) != 0 || len(refusals) != 2 {
		t.Fatalf("%d objects, %d refusals; want both refused", len(objs), len(refusals))
	}
	for i, name := range []string{"spec.triggers[0]", "spec.url"} {
		if got := refusals[i].String(); !strings.Contains(got, name) || !strings.Contains(got, "YAML") {
			t.Errorf("refusal %d: %s; want it to name %s and YAML", i, got, name)
		}
	}
}

// TestAttackCommandStopsAtUnrenderable runs the built cwh-import against the
// fake: a webhook with a C1 character before two good ones.
func TestAttackCommandStopsAtUnrenderable(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "cwh-import")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "../../cmd/cwh-import").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	f := newFakeTwilio(t)
	good1 := f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "studio", FlowSid: testFlow})
	bad := f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "trigger", URL: "https://hooks.example.com/t",
		Triggers: []string{"caf\u0082"}})
	good2 := f.CreateWebhook(twiliofake.Webhook{ConversationSid: f.conv, Target: "webhook", URL: "https://hooks.example.com/w",
		Filters: []string{"onMessageAdded"}})
	cmd := exec.CommandContext(t.Context(), bin, "--twilio-api-url", f.url, f.conv)
	cmd.Env = append(os.Environ(), "TWILIO_ACCOUNT_SID="+fakeAccount, "TWILIO_API_KEY="+fakeKeySid, "TWILIO_API_SECRET="+fakeKeySecret)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	code := cmd.ProcessState.ExitCode()
	t.Logf("exit %d\nstderr:\n%s", code, stderr.String())
	if !strings.Contains(stdout.String(), strings.ToLower(good1)) || !strings.Contains(stdout.String(), strings.ToLower(good2)) {
		t.Errorf("a good webhook is missing from the output (good1 %v, good2 %v)",
			strings.Contains(stdout.String(), strings.ToLower(good1)), strings.Contains(stdout.String(), strings.ToLower(good2)))
	}
	if code != 1 || !strings.Contains(stderr.String(), "refused "+bad) {
		t.Errorf("exit %d, want 1 with %s refused", code, bad)
	}
}

// admitJSON is crdValidator.admit for the object as JSON (what kubectl sends).
func admitJSON(t *testing.T, c *crdValidator, o *v1alpha1.ConversationWebhook) field.ErrorList {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]interface{}{}
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	delete(obj, "status")
	defaulting.Default(obj, c.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, c.schema)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, c.structural, obj)...)
	celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// TestAttackRuneLengths: lengths count characters as the API server does.
func TestAttackRuneLengths(t *testing.T) {
	crd := loadCRD(t)
	scope := twilio.Scope{ConversationSid: testConv}
	base := "https://hooks.example.com/"
	cases := []twilio.Webhook{
		{Target: "trigger", Configuration: twilio.Configuration{URL: base, Triggers: []string{strings.Repeat("é", 248)}}},
		{Target: "trigger", Configuration: twilio.Configuration{URL: base, Triggers: []string{strings.Repeat("é", 249)}}},
		{Target: "trigger", Configuration: twilio.Configuration{URL: base, Triggers: []string{strings.Repeat("🚨", 248)}}},
		{Target: "webhook", Configuration: twilio.Configuration{URL: base + strings.Repeat("é", 512-len(base)), Filters: []string{"onMessageAdded"}}},
		{Target: "webhook", Configuration: twilio.Configuration{URL: base + strings.Repeat("é", 513-len(base)), Filters: []string{"onMessageAdded"}}},
		{Target: "trigger", Configuration: twilio.Configuration{URL: base, Triggers: []string{"a", "b", "a", "c", "d", "e", "b"}}},
		{Target: "webhook", Configuration: twilio.Configuration{URL: base, Filters: []string{"onMessageAdded", "onMessageAdded"}}},
		{Target: "Webhook", Configuration: twilio.Configuration{URL: base, Method: " post ", Filters: []string{"onMessageAdded"}}},
		{Target: "webhook", Configuration: twilio.Configuration{URL: "https:/nohost", Filters: []string{"onMessageAdded"}}},
		{Target: "webhook", Configuration: twilio.Configuration{URL: "https://:443/x", Filters: []string{"onMessageAdded"}}},
	}
	for i, wh := range cases {
		wh.Sid = fmt.Sprintf("WH%032x", 5000+i)
		obj, refusal := Manifest(scope, wh, Options{})
		spec := SpecOf(scope, wh)
		crdErrs := admitJSON(t, crd, &v1alpha1.ConversationWebhook{Spec: spec})
		if (refusal == nil) != (len(crdErrs) == 0) {
			t.Errorf("case %d (%.40q…): importer refuses %v (%v), the CRD rejects %v (%v)", i, wh.Configuration.URL+strings.Join(wh.Configuration.Triggers, ","),
				refusal != nil, refusal, len(crdErrs) > 0, crdErrs.ToAggregate())
		}
		_ = obj
	}
}

// TestAttackTriggerShapeAgreesWithOperator: the spec cwh-import writes must be
// the one the operator, reading the same answer, finds InSync. For an answer
// {"filters":["help"],"triggers":[]} the client (and so the operator) reads
// filters [help] and triggers [] ("empty triggers wins over filters"), but
// SpecOf moves [help] into triggers: Observe reports drift at once, and
// --manage updates, then replaces, the webhook it was meant to adopt.
func TestAttackTriggerShapeAgreesWithOperator(t *testing.T) {
	sid := "WH" + strings.Repeat("6", 32)
	api := rawAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"webhooks":[{"sid":%q,"conversation_sid":%q,"target":"trigger","configuration":`+
			`{"url":"https://hooks.example.com/t","method":"POST","filters":["help"],"triggers":[]}}],"meta":{"next_page_url":null}}`, sid, testConv)
	}, twilio.Options{MaxAttempts: 1})
	scope := twilio.Scope{ConversationSid: testConv}
	hooks, err := api.ListWebhooks(context.Background(), scope)
	if err != nil || len(hooks) != 1 {
		t.Fatalf("%v %v", hooks, err)
	}
	obj, refusal := Manifest(scope, hooks[0], Options{})
	if refusal != nil {
		// Named; nothing written for the operator to read differently: the
		// entries stay filters, as the operator reads them, and are refused
		// as no event's name.
		if !strings.Contains(refusal.String(), "spec.filters") {
			t.Errorf("refused for another reason: %s", refusal)
		}
		return
	}
	got := hooks[0].Configuration // what the operator compares the spec with
	var filters []string
	for _, f := range obj.Spec.Filters {
		filters = append(filters, string(f))
	}
	if !sameSetAttack(filters, got.Filters) || !sameSetAttack(obj.Spec.Triggers, got.Triggers) {
		t.Errorf("manifest filters %q triggers %q; the operator reads filters %q triggers %q: drift on first apply",
			filters, obj.Spec.Triggers, got.Filters, got.Triggers)
	}
}

func sameSetAttack(a, b []string) bool {
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	n := map[string]bool{}
	for _, s := range b {
		n[s] = true
		if !m[s] {
			return false
		}
	}
	return len(m) == len(n)
}

// TestAttackLongNamePrefix: the longest prefix accepted still makes names the
// API server admits; one character more is refused before any request.
func TestAttackLongNamePrefix(t *testing.T) {
	ok := strings.Repeat("a", 253-34)
	if err := (Options{NamePrefix: ok}).Validate(); err != nil {
		t.Errorf("prefix of %d: %v", len(ok), err)
	}
	obj, refusal := Manifest(twilio.Scope{ConversationSid: testConv}, twilio.Webhook{Sid: "WH" + strings.Repeat("F", 32), Target: "studio",
		Configuration: twilio.Configuration{FlowSid: testFlow}}, Options{NamePrefix: ok})
	if refusal != nil || len(obj.Name) != 253 || obj.Name != strings.ToLower(obj.Name) {
		t.Errorf("name %q (%d), refusal %v", obj.Name, len(obj.Name), refusal)
	}
	if err := (Options{NamePrefix: ok + "a"}).Validate(); err == nil {
		t.Errorf("prefix of %d accepted", len(ok)+1)
	}
	if err := (Options{NamePrefix: "Team-"}).Validate(); err == nil {
		t.Error("upper-case prefix accepted")
	}
}
