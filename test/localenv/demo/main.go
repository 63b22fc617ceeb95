// Command demo is make demo: a local control plane, the Twilio fake, the real
// manager binary and the samples of config/samples, all on this machine. It
// prints what a user would look at and a KUBECONFIG line, then runs until
// Ctrl-C. With DEMO_ONESHOT=1 it exits 0 once every sample is Ready, or 1
// after DEMO_TIMEOUT (default 3m).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/importer"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
	"github.com/twilio-operator/conversation-webhook-operator/test/localenv"
)

// The samples' account and conversations, served by the fake.
const (
	demoNamespace = "demo"
	demoAccount   = "AC00000000000000000000000000000000"
	demoKeySid    = "SK00000000000000000000000000000000"
	demoKeySecret = "demoApiKeySecret"
)

var demoConversations = []string{"CH00000000000000000000000000000001", "CH00000000000000000000000000000002"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	timeout := 3 * time.Minute
	if v := os.Getenv("DEMO_TIMEOUT"); v != "" {
		if timeout, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("DEMO_TIMEOUT: %w", err)
		}
	}
	oneshot := os.Getenv("DEMO_ONESHOT") == "1"

	fake := twiliofake.New()
	fake.AddAccount(demoAccount, "demoAuthToken")
	fake.AddAPIKey(demoAccount, demoKeySid, demoKeySecret)
	for _, c := range demoConversations {
		fake.AddConversation(demoAccount, c)
	}
	logPath := filepath.Join(root, "bin", "demo-manager.log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() //nolint:errcheck // log file

	step("Starting a local control plane (kube-apiserver + etcd) with the CRD")
	env, err := localenv.Start(localenv.Options{RepoRoot: root, Fake: fake, ManagerOutput: logFile})
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the manager, the Twilio fake and the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping:", err)
		}
	}()
	step("Twilio fake serving " + env.FakeURL + " (account " + demoAccount + ", conversations " + strings.Join(demoConversations, ", ") + ")")
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	metricsURL := "http://" + metricsAddr + "/metrics"
	step("Starting the manager: bin/manager --twilio-api-url " + env.FakeURL + " --metrics-bind-address " + metricsAddr +
		" --metrics-secure=false (logs: " + logPath + ")")
	mgr, err := env.StartManager(nil, "--sync-period=30s", "--metrics-bind-address="+metricsAddr, "--metrics-secure=false")
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	step("Applying config/samples/ into namespace " + demoNamespace)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}}); err != nil {
		return err
	}
	names, err := applySamples(ctx, env.Client, filepath.Join(root, "config", "samples"))
	if err != nil {
		return err
	}

	step(fmt.Sprintf("Waiting for %d ConversationWebhooks to be Ready", len(names)))
	if err := waitReady(ctx, env, mgr, len(names), timeout); err != nil {
		show(env)
		return err
	}
	show(env)
	if err := importStep(ctx, env, fake, timeout); err != nil {
		return err
	}
	if err := showMetrics(ctx, metricsURL, len(names)); err != nil && oneshot {
		return err
	}
	if oneshot {
		step("DEMO_ONESHOT=1: every sample is Ready, and the imported webhook is observed")
		return nil
	}
	fmt.Printf(`
The operator is running. In another shell:

  export KUBECONFIG=%s
  kubectl get cwh -n %s -o wide
  kubectl describe cwh -n %s support-events
  curl -s %s/_fake/webhooks            # what Twilio (the fake) holds
  curl -s -X DELETE %s/_fake/webhooks/<WH SID>   # delete one behind the operator's back:
                                        # it is recreated within the 30s sync period
  curl -s %s | grep -E '^(%s)'
                                        # the operator's metrics (plain HTTP on loopback in the demo)

Press Ctrl-C to stop.
`, env.Kubeconfig, demoNamespace, demoNamespace, env.FakeURL, env.FakeURL, metricsURL, strings.Join(demoMetrics, "|"))
	select {
	case <-ctx.Done():
	case <-mgr.Exited():
		return fmt.Errorf("the manager exited (see %s): %w", logPath, mgr.Err())
	}
	return nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

// demoMetrics are the metrics to look at first: each object's conditions, why
// it is stalled, and the Twilio requests.
var demoMetrics = []string{"conversationwebhook_status_condition", "conversationwebhook_stalled_reason", "twilio_api_requests_total"}

// freeLoopbackAddr returns a loopback address with a port free right now, for
// the manager's metrics.
func freeLoopbackAddr() (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// showMetrics prints where the manager's metrics are read, and the demo
// objects' Ready series from there. It waits (up to 15 s) for at least ready
// objects' Ready=True series: the error says they were not served.
func showMetrics(ctx context.Context, url string, ready int) error {
	step("Metrics: curl -s " + url + " | grep -E '^(" + strings.Join(demoMetrics, "|") + ")'")
	var lines []string
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		lines, err = statusLines(ctx, url)
		n := 0
		for _, l := range lines {
			if strings.Contains(l, `condition="Ready"`) && strings.Contains(l, `status="True"`) {
				n++
			}
		}
		if err == nil && n < ready {
			err = fmt.Errorf("%s serves %d Ready=True series of conversationwebhook_status_condition, want %d", url, n, ready)
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	for _, l := range lines {
		fmt.Println("    " + l)
	}
	if err != nil {
		fmt.Println("    (", err, ")")
	}
	return err
}

// statusLines reads the metrics at url: each object's current Ready series
// and its stalled reason, if any.
func statusLines(ctx context.Context, url string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics unavailable: %w", err)
	}
	defer resp.Body.Close() //nolint:errcheck // read-only
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics unavailable: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		ready := strings.HasPrefix(line, "conversationwebhook_status_condition{") && strings.Contains(line, `condition="Ready"`) &&
			strings.HasSuffix(line, " 1")
		if ready || strings.HasPrefix(line, "conversationwebhook_stalled_reason{") {
			out = append(out, line)
		}
	}
	return out, nil
}

// applySamples creates every object of the samples directory in the demo namespace.
func applySamples(ctx context.Context, c client.Client, dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	// Secrets first, then accounts, so that no sample waits for its credentials.
	rank := func(f string) int {
		switch {
		case strings.Contains(f, "secret"):
			return 0
		case strings.Contains(f, "account"):
			return 1
		}
		return 2
	}
	sort.SliceStable(files, func(i, j int) bool {
		ri, rj := rank(files[i]), rank(files[j])
		return ri < rj || ri == rj && files[i] < files[j]
	})
	var names []string
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&obj.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		obj.SetNamespace(demoNamespace)
		if err := c.Create(ctx, obj); err != nil {
			return nil, fmt.Errorf("applying %s: %w", f, err)
		}
		fmt.Printf("    %s/%s created\n", strings.ToLower(obj.GetKind()), obj.GetName())
		if obj.GetKind() == "ConversationWebhook" {
			names = append(names, obj.GetName())
		}
	}
	return names, nil
}

func waitReady(ctx context.Context, env *localenv.Env, mgr *localenv.Manager, want int, timeout time.Duration) error {
	deadline := time.After(timeout)
	last := ""
	for {
		var list v1alpha1.ConversationWebhookList
		if err := env.Client.List(ctx, &list, client.InNamespace(demoNamespace)); err != nil {
			return err
		}
		ready := 0
		var states []string
		for _, o := range list.Items {
			c := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
			state := "Pending"
			if c != nil {
				state = string(c.Status) + "/" + c.Reason
			}
			if c != nil && c.Status == metav1.ConditionTrue && o.Status.ObservedGeneration == o.Generation {
				ready++
			}
			states = append(states, o.Name+"="+state)
		}
		if s := strings.Join(states, " "); s != last {
			fmt.Printf("    %d/%d Ready: %s\n", ready, want, s)
			last = s
		}
		if ready == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-mgr.Exited():
			return fmt.Errorf("the manager exited: %w", mgr.Err())
		case <-deadline:
			return fmt.Errorf("not every sample was Ready after %s", timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// show prints what a user would look at: kubectl's view and Twilio's.
func show(env *localenv.Env) {
	step("kubectl get cwh -n " + demoNamespace + " -o wide")
	cmd := exec.Command("kubectl", "get", "cwh", "-n", demoNamespace, "-o", "wide") //nolint:noctx // short, local
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("    (kubectl unavailable:", err, ")")
	}
	step("Webhooks in Twilio (the fake), GET " + env.FakeURL + "/_fake/webhooks")
	out, _ := json.MarshalIndent(env.Fake.Webhooks(), "    ", "  ")
	fmt.Println("    " + string(out))
	step("export KUBECONFIG=" + env.Kubeconfig)
}

// importStep shows the migration path: a webhook made by hand in Twilio is
// imported as cwh-import does (managementPolicy Observe), applied, and its
// Synced condition printed.
func importStep(ctx context.Context, env *localenv.Env, fake *twiliofake.Server, timeout time.Duration) error {
	conv := demoConversations[1]
	sid := fake.CreateWebhook(twiliofake.Webhook{ConversationSid: conv, Target: "webhook", URL: "https://legacy.example.com/hook",
		Method: "post", Filters: []string{"onMessageAdded"}})
	step("A webhook made by hand in Twilio: " + sid + " in " + conv + "; importing it as bin/cwh-import would:")
	fmt.Printf("    bin/cwh-import --twilio-api-url %s --namespace %s %s\n", env.FakeURL, demoNamespace, conv)
	factory, err := twilio.NewFactory(twilio.Options{BaseURL: env.FakeURL, Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	api, err := factory.For(twilio.Credentials{AccountSid: demoAccount, APIKeySid: demoKeySid, APIKeySecret: demoKeySecret})
	if err != nil {
		return err
	}
	objs, refusals, err := importer.Manifests(ctx, api, []twilio.Scope{{ConversationSid: conv}}, importer.Options{Namespace: demoNamespace})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if len(refusals) > 0 {
		return fmt.Errorf("import refused: %v", refusals)
	}
	for _, o := range objs {
		if o.Annotations[v1alpha1.AnnotationWebhookSid] != sid {
			continue // the samples' own webhooks
		}
		o.Spec.AccountRef = &v1alpha1.AccountReference{Name: "twilio"}
		out, err := importer.YAML(o)
		if err != nil {
			return err
		}
		fmt.Printf("%s", indent(string(out)))
		if err := env.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("applying the imported manifest: %w", err)
		}
		return waitSynced(ctx, env, o.Name, timeout)
	}
	return fmt.Errorf("import: webhook %s not among the imported manifests", sid)
}

func waitSynced(ctx context.Context, env *localenv.Env, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		o := &v1alpha1.ConversationWebhook{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: name}, o); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionSynced); c != nil {
			fmt.Printf("    %s: Synced=%s/%s: %s (managementPolicy %s: it only observes)\n", name, c.Status, c.Reason, c.Message,
				o.Spec.ManagementPolicy)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s has no Synced condition after %s", name, timeout)
}

func indent(s string) string {
	return "      " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n      ") + "\n"
}
