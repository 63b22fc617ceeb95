package install

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// assertDefaultAccount checks the chart's rendered ClusterTwilioAccount: its
// name and spec, compared as JSON (YAML numbers decode as float64).
func assertDefaultAccount(t *testing.T, objs []*unstructured.Unstructured, name string, spec map[string]interface{}) {
	t.Helper()
	account := findExact(objs, "ClusterTwilioAccount", name)
	if account == nil {
		t.Fatalf("no ClusterTwilioAccount %s rendered", name)
	}
	got, _ := json.Marshal(account.Object["spec"])
	want, _ := json.Marshal(spec)
	if string(got) != string(want) {
		t.Errorf("ClusterTwilioAccount %s spec:\n got %s\nwant %s", name, got, want)
	}
}

// TestChartDefaultAccountIsAdmitted renders defaultAccount.create with only
// what it requires and applies it: the CRD's schema and CEL rules admit it,
// the Secret's namespace is the release's, and it has no conditions (no
// namespace may use it) and no limits. A condition selecting nothing is
// rejected by the CRD's CEL rule, so admission above means something.
func TestChartDefaultAccountIsAdmitted(t *testing.T) {
	const ns = "chart-account"
	objs, err := RenderChart(chartPath, filepath.Join("testdata", "values-account-defaults.yaml"), "cwh", ns)
	if err != nil {
		t.Fatal(err)
	}
	assertDefaultAccount(t, objs, "twilio", map[string]interface{}{
		"credentialsSecretRef": map[string]interface{}{"namespace": ns, "name": "twilio-credentials"},
	})
	account := findExact(objs, "ClusterTwilioAccount", "twilio")
	if account.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the default account is not kept with the CRDs: %v", account.GetAnnotations())
	}
	if args := managerArgs(t, find(objs, "Deployment", "")); !strings.Contains(strings.Join(args, " "), "--default-account=twilio") {
		t.Errorf("the manager is not told to use the account: %v", args)
	}
	ensureNamespace(t, k8sClient, ns)
	applyAll(t, k8sClient, objs)

	bad, err := renderWithNamespace(t, ns, "defaultAccount:\n  name: bad\n  create: true\n  secretRef: {name: s}\n  conditions:\n  - namespaces: []\n")
	if err != nil {
		t.Fatal(err)
	}
	err = k8sClient.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(findExact(bad, "ClusterTwilioAccount", "bad")),
		client.FieldOwner("install-test"))
	if err == nil || !strings.Contains(err.Error(), "a condition needs namespaceSelector or namespaces") {
		t.Errorf("a condition that selects nothing was not rejected by the CRD's CEL rule: %v", err)
	}

	for values, want := range map[string]string{
		"defaultAccount:\n  create: true\n  secretRef: {name: s}\n": "defaultAccount.name is required",
		"defaultAccount:\n  name: a\n  create: true\n":              "defaultAccount.secretRef.name is required",
	} {
		if _, err := renderWithNamespace(t, ns, values); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("render of %q: want an error with %q, got %v", values, want, err)
		}
	}
}

func renderWithNamespace(t *testing.T, ns, values string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "values.yaml")
	if err := writeFile(f, values); err != nil {
		t.Fatal(err)
	}
	return RenderChart(chartPath, f, "cwh", ns)
}

// userRoles are the ClusterRoles for people that config/rbac, dist/install.yaml
// and the chart all ship, by config/rbac file name (without _role.yaml).
var userRoles = []string{
	"conversationwebhook_editor", "conversationwebhook_viewer",
	"twilioaccount_editor", "twilioaccount_viewer",
	"clustertwilioaccount_viewer",
}

// TestUserRolesAreTheSameEverywhere checks that the chart and dist/install.yaml
// ship config/rbac's editor and viewer ClusterRoles, with the same rules and
// aggregation labels, and that no role aggregated into edit or admin grants
// any write on ClusterTwilioAccounts: writing one hands an account's Twilio
// credentials to any namespace, so only cluster administrators may.
func TestUserRolesAreTheSameEverywhere(t *testing.T) {
	chart, err := RenderChart(chartPath, "", "cwh", "cwh-system")
	if err != nil {
		t.Fatal(err)
	}
	dist := readObjects(t, installPath)
	for _, r := range userRoles {
		want := readObjects(t, filepath.Join(RepoRoot(), "config", "rbac", r+"_role.yaml"))[0]
		name := strings.ReplaceAll(r, "_", "-")
		for where, got := range map[string]*unstructured.Unstructured{
			"the chart":         findExact(chart, "ClusterRole", "cwh-conversation-webhook-operator-"+name),
			"dist/install.yaml": findExact(dist, "ClusterRole", "conversation-webhook-operator-"+name+"-role"),
		} {
			if got == nil {
				t.Errorf("%s has no %s ClusterRole", where, name)
				continue
			}
			if !equality.Semantic.DeepEqual(rulesJSON(got), rulesJSON(want)) {
				t.Errorf("%s's %s rules differ from config/rbac/%s_role.yaml:\n got %s\nwant %s", where, name, r, rulesJSON(got), rulesJSON(want))
			}
			if aggregation(got) != aggregation(want) {
				t.Errorf("%s's %s aggregates into %q, config/rbac's into %q", where, name, aggregation(got), aggregation(want))
			}
		}
	}
	for where, objs := range map[string][]*unstructured.Unstructured{"the chart": chart, "dist/install.yaml": dist} {
		for _, o := range objs {
			agg := aggregation(o)
			if o.GetKind() != "ClusterRole" || (!strings.Contains(agg, "aggregate-to-edit") && !strings.Contains(agg, "aggregate-to-admin")) {
				continue
			}
			if writes := clusterAccountWrites(o); writes != "" {
				t.Errorf("%s: ClusterRole %s is aggregated into %s and grants %s on clustertwilioaccounts", where, o.GetName(), agg, writes)
			}
		}
	}
}

func rulesJSON(o *unstructured.Unstructured) string {
	data, _ := json.Marshal(o.Object["rules"])
	return string(data)
}

// aggregation lists the role's rbac.authorization.k8s.io/aggregate-to-* labels set to "true".
func aggregation(o *unstructured.Unstructured) string {
	var out []string
	for k, v := range o.GetLabels() {
		if strings.HasPrefix(k, "rbac.authorization.k8s.io/aggregate-to-") && v == "true" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// clusterAccountWrites returns the write verbs a role grants on clustertwilioaccounts.
func clusterAccountWrites(o *unstructured.Unstructured) string {
	var rules []struct {
		APIGroups []string `json:"apiGroups"`
		Resources []string `json:"resources"`
		Verbs     []string `json:"verbs"`
	}
	data, _ := json.Marshal(o.Object["rules"])
	_ = json.Unmarshal(data, &rules)
	var writes []string
	for _, r := range rules {
		for _, res := range r.Resources {
			if res != "clustertwilioaccounts" && res != "*" {
				continue
			}
			for _, v := range r.Verbs {
				if v != "get" && v != "list" && v != "watch" {
					writes = append(writes, v)
				}
			}
		}
	}
	return strings.Join(writes, ",")
}

// TestChartNotesSayWhoMayUseTheDefaultAccount checks what helm install prints:
// an account created without conditions serves no namespace yet, and without
// a default account every object names one.
func TestChartNotesSayWhoMayUseTheDefaultAccount(t *testing.T) {
	for values, want := range map[string]string{
		"": "No default account",
		"defaultAccount:\n  name: twilio\n  create: true\n  secretRef: {name: s}\n":                                    "no namespace may use it yet",
		"defaultAccount:\n  name: twilio\n":                                                                            "not created by this release",
		"defaultAccount:\n  name: twilio\n  create: true\n  secretRef: {name: s}\n  conditions: [{namespaces: [a]}]\n": "created by this release.",
	} {
		f := filepath.Join(t.TempDir(), "values.yaml")
		if err := writeFile(f, values); err != nil {
			t.Fatal(err)
		}
		notes, err := RenderNotes(chartPath, f, "cwh", "cwh-system")
		if err != nil || !strings.Contains(notes, want) {
			t.Errorf("NOTES with %q: want %q, got %v\n%s", values, want, err, notes)
		}
		if strings.Contains(values, "conditions") && strings.Contains(notes, "no namespace may use it") {
			t.Errorf("NOTES with conditions still say no namespace may use the account:\n%s", notes)
		}
	}
}

// TestChartRefusesDefaultCredentials: the replaced value fails the render
// instead of silently dropping the default credentials on upgrade.
func TestChartRefusesDefaultCredentials(t *testing.T) {
	_, err := renderWith(t, "defaultCredentials:\n  secretName: twilio-credentials\n")
	if err == nil || !strings.Contains(err.Error(), "replaced by defaultAccount") {
		t.Errorf("defaultCredentials.secretName rendered: %v", err)
	}
	// helm upgrade --reuse-values from a release that left it empty still renders.
	if _, err := renderWith(t, "defaultCredentials:\n  secretName: \"\"\n"); err != nil {
		t.Error(err)
	}
}
