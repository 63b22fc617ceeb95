package install

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"
)

// kustomizationDirs lists, relative to the repository root, every directory
// under config/ and docs/ that holds a kustomization.yaml.
func kustomizationDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	for _, top := range []string{"config", "docs"} {
		err := filepath.WalkDir(filepath.Join(RepoRoot(), top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && d.Name() == "kustomization.yaml" {
				rel, err := filepath.Rel(RepoRoot(), filepath.Dir(path))
				dirs = append(dirs, filepath.ToSlash(rel))
				return err
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

// kustomizationKind is the kind in dir/kustomization.yaml: Kustomization
// (also when unset, as kustomize reads it) or Component.
func kustomizationKind(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(RepoRoot(), dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Kind string `json:"kind"`
	}
	if err := sigsyaml.Unmarshal(data, &k); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if k.Kind == "" {
		return "Kustomization"
	}
	return k.Kind
}

// componentTests build each kustomize Component under config/ and docs/ inside
// a kustomization, as users include it; a Component without one fails the test.
var componentTests = map[string]func(t *testing.T){
	"docs/argocd": testArgoCDComponent,
}

// TestKustomizationsBuildAndApply builds every kustomization under config/ and
// docs/ with kustomize's Go API (as `kustomize build` does) and applies each
// build server-side to the API server: CRDs first, then the rest. The CRDs
// the builds' objects need (ours; stand-ins for the Prometheus Operator's
// ServiceMonitor and Flux's Kustomization) are applied before any build.
func TestKustomizationsBuildAndApply(t *testing.T) {
	dirs := kustomizationDirs(t)
	for _, want := range []string{"config/default", "config/crd", "config/rbac", "config/manager", "config/samples",
		"config/network-policy", "config/prometheus", "docs/argocd", "docs/flux"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("no kustomization.yaml in %s", want)
		}
	}
	var prerequisites []*unstructured.Unstructured
	for _, p := range append(slices.Clone(crdPaths), filepath.Join("testdata", "servicemonitor-crd.yaml"),
		filepath.Join("testdata", "flux-kustomization-crd.yaml"), filepath.Join("testdata", "prometheusrule-crd.yaml")) {
		prerequisites = append(prerequisites, readObjects(t, p)...)
	}
	applyAll(t, k8sClient, prerequisites)

	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			if kind := kustomizationKind(t, dir); kind == "Component" {
				test, ok := componentTests[dir]
				if !ok {
					t.Fatalf("%s is a kustomize Component with no test in componentTests", dir)
				}
				test(t)
				return
			}
			out, err := BuildKustomization(filepath.Join(RepoRoot(), dir))
			if err != nil {
				t.Fatalf("kustomize build %s: %v", dir, err)
			}
			objs, err := DecodeYAML(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				t.Fatalf("kustomize build %s produced nothing", dir)
			}
			applyBuild(t, "kustomize-"+strings.ReplaceAll(filepath.Base(dir), "_", "-"), objs)
		})
	}
}

// applyBuild applies a build as `kubectl apply --server-side -n ns` would:
// namespaced objects without a namespace go to ns, and every namespace the
// objects name exists first.
func applyBuild(t *testing.T, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	created := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			created[o.GetName()] = true
		}
	}
	for _, o := range objs {
		if o.GetKind() == "Namespace" || o.GetKind() == "CustomResourceDefinition" {
			continue
		}
		namespaced, err := k8sClient.IsObjectNamespaced(o)
		if err != nil {
			t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if !namespaced {
			continue
		}
		if o.GetNamespace() == "" {
			o.SetNamespace(ns)
		}
		if !created[o.GetNamespace()] {
			ensureNamespace(t, k8sClient, o.GetNamespace())
			created[o.GetNamespace()] = true
		}
	}
	applyAll(t, k8sClient, objs)
}

// testArgoCDComponent builds docs/argocd as its comment tells users to: a
// kustomization with Argo CD's argocd-cm among its resources and docs/argocd
// among its components. The built argocd-cm keeps its own keys and carries the
// health check, byte for byte health.lua, under Argo CD's key for the kind.
func testArgoCDComponent(t *testing.T) {
	component, err := filepath.Abs(filepath.Join(RepoRoot(), "docs", "argocd"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// kustomize takes no absolute paths in components: name it relative to dir.
	rel, err := filepath.Rel(dir, component)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"argocd-cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
  url: https://argocd.example.com
`,
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: argocd
resources:
- argocd-cm.yaml
components:
- ` + filepath.ToSlash(rel) + "\n",
	} {
		if err := writeFile(filepath.Join(dir, name), data); err != nil {
			t.Fatal(err)
		}
	}
	out, err := BuildKustomization(dir)
	if err != nil {
		t.Fatalf("kustomize build of argocd-cm with the docs/argocd component: %v", err)
	}
	objs, err := DecodeYAML(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "ConfigMap" || objs[0].GetName() != "argocd-cm" || objs[0].GetNamespace() != "argocd" {
		t.Fatalf("want one ConfigMap argocd/argocd-cm, got:\n%s", out)
	}
	health, err := os.ReadFile(filepath.Join(component, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(objs[0].Object, "data")
	const key = "resource.customizations.health.conversations.twilio-operator.io_ConversationWebhook"
	if data[key] != string(health) {
		t.Errorf("argocd-cm's %s is not docs/argocd/health.lua:\n%s", key, data[key])
	}
	if data["url"] != "https://argocd.example.com" {
		t.Errorf("the component dropped argocd-cm's own keys: %v", data)
	}
	applyBuild(t, "argocd", objs)
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(objs[0].GroupVersionKind())
	if err := k8sClient.Get(context.Background(), clientKey(objs[0]), got); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := unstructured.NestedString(got.Object, "data", key); s != string(health) {
		t.Error("the applied argocd-cm lost the health check")
	}
}

// TestInstallYAMLIsTheDefaultBuild checks that dist/install.yaml is exactly
// kustomize build config/default (but for the manager's image, which
// make build-installer IMG=... sets): run make build-installer when it fails.
func TestInstallYAMLIsTheDefaultBuild(t *testing.T) {
	out, err := BuildKustomization(filepath.Join(RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	built, err := DecodeYAML(out)
	if err != nil {
		t.Fatal(err)
	}
	dist := readObjects(t, installPath)
	if len(built) != len(dist) {
		t.Errorf("dist/install.yaml has %d objects, kustomize build config/default %d: run make build-installer", len(dist), len(built))
	}
	for _, b := range built {
		var d *unstructured.Unstructured
		for _, o := range dist {
			if o.GetKind() == b.GetKind() && o.GetName() == b.GetName() && o.GetNamespace() == b.GetNamespace() {
				d = o.DeepCopy()
			}
		}
		if d == nil {
			t.Errorf("dist/install.yaml lacks %s %s: run make build-installer", b.GetKind(), b.GetName())
			continue
		}
		if b.GetKind() == "Deployment" {
			image, _, _ := unstructured.NestedSlice(b.Object, "spec", "template", "spec", "containers")
			containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			if len(image) == 1 && len(containers) == 1 {
				containers[0].(map[string]interface{})["image"] = image[0].(map[string]interface{})["image"]
				_ = unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers")
			}
		}
		if !equality.Semantic.DeepEqual(b.Object, d.Object) {
			t.Errorf("dist/install.yaml's %s %s differs from kustomize build config/default: run make build-installer", b.GetKind(), b.GetName())
		}
	}
}

func clientKey(o *unstructured.Unstructured) client.ObjectKey { return client.ObjectKeyFromObject(o) }
