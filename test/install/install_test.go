package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"
)

var (
	crdPath     = filepath.Join(RepoRoot(), "config", "crd", "bases", "conversations.twilio-operator.io_conversationwebhooks.yaml")
	crdPaths    = []string{crdPath, crdBase("twilioaccounts"), crdBase("clustertwilioaccounts")}
	rolePath    = filepath.Join(RepoRoot(), "config", "rbac", "role.yaml")
	installPath = filepath.Join(RepoRoot(), "dist", "install.yaml")
	chartPath   = filepath.Join(RepoRoot(), ChartDir)
	valuesAll   = filepath.Join("testdata", "values-all.yaml")
	k8sClient   client.Client
)

func crdBase(plural string) string {
	return filepath.Join(RepoRoot(), "config", "crd", "bases", "conversations.twilio-operator.io_"+plural+".yaml")
}

// assertCRDsAreTheGenerated checks that objs carry the three CRDs, each with
// the spec make manifests generated into config/crd/bases.
func assertCRDsAreTheGenerated(t *testing.T, objs []*unstructured.Unstructured, where, fix string) {
	t.Helper()
	for _, p := range crdPaths {
		generated := readObjects(t, p)[0]
		crd := findExact(objs, "CustomResourceDefinition", generated.GetName())
		if crd == nil || !equality.Semantic.DeepEqual(crd.Object["spec"], generated.Object["spec"]) {
			t.Errorf("%s's CRD %s differs from config/crd/bases (or is missing): run %s", where, generated.GetName(), fix)
		}
	}
}

func findExact(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// managerArgs returns the manager container's args of a Deployment.
func managerArgs(t *testing.T, dep *unstructured.Unstructured) []string {
	t.Helper()
	args, _, _ := unstructured.NestedStringSlice(managerContainer(t, dep), "args")
	return args
}

// managerEnv returns the manager container's env (nil when it has none).
func managerEnv(t *testing.T, dep *unstructured.Unstructured) []interface{} {
	t.Helper()
	env, _, _ := unstructured.NestedSlice(managerContainer(t, dep), "env")
	return env
}

func managerContainer(t *testing.T, dep *unstructured.Unstructured) map[string]interface{} {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		c := c.(map[string]interface{})
		if c["name"] == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no manager container", dep.GetName())
	return nil
}

// TestMain starts one envtest API server (no CRDs: the tests install them).
func TestMain(m *testing.M) {
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest (is KUBEBUILDER_ASSETS set? make test sets it): %v\n", err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	code := 1
	if err == nil {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, err)
	}
	_ = env.Stop()
	os.Exit(code)
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := DecodeYAML(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, nameSuffix string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && strings.HasSuffix(o.GetName(), nameSuffix) {
			return o
		}
	}
	return nil
}

// applyAll server-side applies the objects as kubectl apply --server-side would:
// namespaces and CRDs first (waiting for the CRDs to be established), then the rest.
func applyAll(t *testing.T, c client.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	first := func(o *unstructured.Unstructured) bool {
		return o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition"
	}
	for _, pass := range []bool{true, false} {
		for _, o := range objs {
			if first(o) != pass {
				continue
			}
			if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
				client.FieldOwner("install-test"), client.ForceOwnership); err != nil {
				t.Fatalf("server-side apply of %s %s: %v", o.GetKind(), o.GetName(), err)
			}
			if o.GetKind() == "CustomResourceDefinition" {
				waitEstablished(t, c, o.GetName())
			}
		}
	}
	for _, o := range objs {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
			t.Fatalf("%s %s not found after apply: %v", o.GetKind(), o.GetName(), err)
		}
	}
}

func waitEstablished(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, nil //nolint:nilerr // not there yet
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

func ensureNamespace(t *testing.T, c client.Client, ns string) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]interface{}{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]interface{}{"name": ns}}}
	if err := c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("install-test")); err != nil {
		t.Fatal(err)
	}
}

func TestInstallYAMLIsOneCompleteFile(t *testing.T) {
	objs := readObjects(t, installPath)
	for _, want := range []string{"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if !slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == want }) {
			t.Errorf("dist/install.yaml has no %s", want)
		}
	}
	assertCRDsAreTheGenerated(t, objs, "dist/install.yaml", "make build-installer")
	role := find(objs, "ClusterRole", "manager-role")
	if role == nil || !equality.Semantic.DeepEqual(role.Object["rules"], readObjects(t, rolePath)[0].Object["rules"]) {
		t.Error("dist/install.yaml's manager ClusterRole differs from config/rbac/role.yaml: run make build-installer")
	}
	dep := find(objs, "Deployment", "controller-manager")
	if dep == nil {
		t.Fatal("no manager Deployment")
	}
	assertHardened(t, dep)
	// Upgrades roll the Deployment: old and new manager run side by side, and
	// only the lease keeps them from both creating a webhook for one object.
	if args := managerArgs(t, dep); !slices.Contains(args, "--leader-elect") {
		t.Errorf("dist/install.yaml's manager runs without --leader-elect: %v", args)
	}
}

// TestInstallYAMLAppliesServerSide applies dist/install.yaml, then the
// samples' TwilioAccount and a ClusterTwilioAccount: its CRDs admit them.
func TestInstallYAMLAppliesServerSide(t *testing.T) {
	applyAll(t, k8sClient, readObjects(t, installPath))
	ensureNamespace(t, k8sClient, "dist-accounts")
	account := readObjects(t, filepath.Join(RepoRoot(), "config", "samples", "twilioaccount.yaml"))[0]
	account.SetNamespace("dist-accounts")
	cluster := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "conversations.twilio-operator.io/v1alpha1", "kind": "ClusterTwilioAccount",
		"metadata": map[string]interface{}{"name": "dist-default"},
		"spec": map[string]interface{}{
			"credentialsSecretRef": map[string]interface{}{"namespace": "dist-accounts", "name": "twilio-credentials"},
			"conditions":           []interface{}{map[string]interface{}{"namespaces": []interface{}{"dist-accounts"}}},
		},
	}}
	applyAll(t, k8sClient, []*unstructured.Unstructured{account, cluster})
}

// TestChartLints lints the chart with its defaults and every testdata/values-*.yaml.
func TestChartLints(t *testing.T) {
	valuesFiles, _ := filepath.Glob(filepath.Join("testdata", "values-*.yaml"))
	if !slices.Contains(valuesFiles, valuesAll) {
		t.Fatalf("%s not found among %v", valuesAll, valuesFiles)
	}
	for _, vf := range append([]string{""}, valuesFiles...) {
		errs, err := LintChart(chartPath, vf, "cwh-system")
		if err != nil || len(errs) > 0 {
			t.Fatalf("lint with %q: %v %v", vf, err, errs)
		}
	}
}

func TestChartCRDAndRBACEqualTheGenerated(t *testing.T) {
	objs, err := RenderChart(chartPath, "", "cwh", "cwh-system")
	if err != nil {
		t.Fatal(err)
	}
	assertCRDsAreTheGenerated(t, objs, "the chart", "make manifests")
	for _, crd := range objs {
		if crd.GetKind() == "CustomResourceDefinition" && crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("the chart's CRD %s lacks helm.sh/resource-policy: keep by default: %v", crd.GetName(), crd.GetAnnotations())
		}
	}
	role := find(objs, "ClusterRole", "-manager")
	if role == nil || !equality.Semantic.DeepEqual(role.Object["rules"], readObjects(t, rolePath)[0].Object["rules"]) {
		t.Fatal("the chart's manager ClusterRole differs from config/rbac/role.yaml: run make manifests")
	}
}

func TestChartAppliesServerSide(t *testing.T) {
	c := k8sClient
	applyAll(t, c, readObjects(t, filepath.Join("testdata", "servicemonitor-crd.yaml")))
	for i, vf := range []string{"", valuesAll} {
		ns := fmt.Sprintf("chart-%d", i)
		objs, err := RenderChart(chartPath, vf, "cwh", ns)
		if err != nil {
			t.Fatal(err)
		}
		ensureNamespace(t, c, ns)
		applyAll(t, c, objs)
		dep := find(objs, "Deployment", "")
		assertHardened(t, dep)
		args := managerArgs(t, dep)
		// Always a lease, one replica or many: helm upgrade's rolling update
		// runs the old and the new manager side by side.
		if !slices.Contains(args, "--leader-elect") {
			t.Errorf("values %q: the manager runs without --leader-elect: %v", vf, args)
		}
		if vf == valuesAll {
			for _, want := range []string{"--twilio-rps=50", "--twilio-max-inflight=20", "--twilio-timeout=15s",
				"--default-account=twilio-default", "--sync-period=5m"} {
				if !slices.Contains(args, want) {
					t.Errorf("all-options Deployment lacks %s: %v", want, args)
				}
			}
			if find(objs, "ServiceMonitor", "") == nil {
				t.Error("all-options render has no ServiceMonitor")
			}
			wantEnv := []interface{}{
				map[string]interface{}{"name": "GOMEMLIMIT", "value": "400MiB"},
				map[string]interface{}{"name": "MEMORY_LIMIT", "valueFrom": map[string]interface{}{
					"resourceFieldRef": map[string]interface{}{"containerName": "manager", "resource": "limits.memory"}}},
			}
			if env := managerEnv(t, dep); !reflect.DeepEqual(env, wantEnv) {
				t.Errorf("all-options Deployment's env = %v, want manager.extraEnv %v", env, wantEnv)
			}
			assertDefaultAccount(t, objs, "twilio-default", map[string]interface{}{
				"credentialsSecretRef": map[string]interface{}{"namespace": "twilio-credentials", "name": "twilio-default-credentials"},
				"conditions": []interface{}{
					map[string]interface{}{"namespaces": []interface{}{"support", "billing"}},
					map[string]interface{}{"namespaceSelector": map[string]interface{}{
						"matchLabels": map[string]interface{}{"twilio-operator.io/default-account": "true"}}},
				},
				"limits": map[string]interface{}{"maxInFlight": int64(5), "requestsPerSecond": int64(20)},
			})
		} else {
			if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--default-account") }) {
				t.Errorf("default values pass a default account: %v", args)
			}
			if find(objs, "ClusterTwilioAccount", "") != nil {
				t.Error("default values render a ClusterTwilioAccount")
			}
			if env := managerEnv(t, dep); env != nil {
				t.Errorf("default values set the manager's env: %v", env)
			}
		}
	}
	// Without crds.keep the CRDs carry no keep policy.
	objs, err := renderWith(t, "crds:\n  keep: false\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range objs {
		if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok && crd.GetKind() == "CustomResourceDefinition" {
			t.Errorf("crds.keep=false still keeps the CRD %s", crd.GetName())
		}
	}
}

func renderWith(t *testing.T, values string) ([]*unstructured.Unstructured, error) {
	t.Helper()
	return renderWithNamespace(t, "cwh-system", values)
}

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o600) }

// assertHardened checks the manager's pod: non-root, read-only root filesystem,
// no capabilities, seccomp RuntimeDefault, requests, limits and probes.
func assertHardened(t *testing.T, dep *unstructured.Unstructured) {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					SecurityContext struct {
						RunAsNonRoot   *bool `json:"runAsNonRoot"`
						SeccompProfile struct {
							Type string `json:"type"`
						} `json:"seccompProfile"`
					} `json:"securityContext"`
					Containers []struct {
						SecurityContext struct {
							ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
							AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
							Capabilities             struct {
								Drop []string `json:"drop"`
							} `json:"capabilities"`
						} `json:"securityContext"`
						Resources struct {
							Requests map[string]string `json:"requests"`
							Limits   map[string]string `json:"limits"`
						} `json:"resources"`
						LivenessProbe  map[string]interface{} `json:"livenessProbe"`
						ReadinessProbe map[string]interface{} `json:"readinessProbe"`
					} `json:"containers"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	data, _ := sigsyaml.Marshal(dep.Object)
	if err := sigsyaml.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	pod := d.Spec.Template.Spec
	if pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod security context not hardened: %+v", pod.SecurityContext)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem ||
		c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation ||
		!slices.Equal(c.SecurityContext.Capabilities.Drop, []string{"ALL"}) {
		t.Errorf("container security context not hardened: %+v", c.SecurityContext)
	}
	if len(c.Resources.Requests) == 0 || len(c.Resources.Limits) == 0 || c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Errorf("container lacks requests, limits or probes")
	}
}

// rbacMarker matches a +kubebuilder:rbac marker.
var rbacMarker = regexp.MustCompile(`\+kubebuilder:rbac:groups=([^,]*),resources=([^,]*),verbs=(\S+)`)

// TestRoleGrantsOnlyWhatTheMarkersSay reads the controller's RBAC markers
// directly and fails if config/rbac/role.yaml grants any verb on any resource
// they do not.
func TestRoleGrantsOnlyWhatTheMarkersSay(t *testing.T) {
	allowed := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(RepoRoot(), "internal", "controller", "*.go"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range rbacMarker.FindAllStringSubmatch(string(data), -1) {
			group := strings.Trim(m[1], `"`)
			for _, g := range strings.Split(group, ";") {
				for _, r := range strings.Split(m[2], ";") {
					for _, v := range strings.Split(m[3], ";") {
						allowed[g+"/"+r+"/"+v] = true
					}
				}
			}
		}
	}
	if len(allowed) == 0 {
		t.Fatal("no RBAC markers found: the check would prove nothing")
	}
	var role struct {
		Rules []struct {
			APIGroups []string `json:"apiGroups"`
			Resources []string `json:"resources"`
			Verbs     []string `json:"verbs"`
		} `json:"rules"`
	}
	data, err := os.ReadFile(rolePath)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	for _, rule := range role.Rules {
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				for _, v := range rule.Verbs {
					if !allowed[g+"/"+r+"/"+v] {
						t.Errorf("role.yaml grants %q on %s in group %q, which no marker asks for", v, r, g)
					}
				}
			}
		}
	}
}
