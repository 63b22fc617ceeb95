package image

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	yamlutil "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// repoRoot is the module root: the first directory upwards with a go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// readVersion returns the VERSION file: the one place the version is written.
func readVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestVersionIsOneEverywhere checks that the chart's version and appVersion
// (the chart's default image tag), config/manager's image tag and
// dist/install.yaml's image all say the VERSION file's version: make
// sync-version writes them.
func TestVersionIsOneEverywhere(t *testing.T) {
	root := repoRoot(t)
	version := readVersion(t)
	const fix = ": run make sync-version"

	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	readYAML(t, filepath.Join(root, "charts/conversation-webhook-operator/Chart.yaml"), &chart)
	if chart.AppVersion != version || chart.Version != version {
		t.Errorf("Chart.yaml has version %q, appVersion %q; VERSION says %q%s", chart.Version, chart.AppVersion, version, fix)
	}

	var kust struct {
		Images []struct {
			Name    string `json:"name"`
			NewName string `json:"newName"`
			NewTag  string `json:"newTag"`
		} `json:"images"`
	}
	readYAML(t, filepath.Join(root, "config/manager/kustomization.yaml"), &kust)
	var managerImage string
	for _, img := range kust.Images {
		if img.Name == "controller" {
			managerImage = img.NewName + ":" + img.NewTag
		}
	}
	if !strings.HasSuffix(managerImage, ":"+version) {
		t.Errorf("config/manager/kustomization.yaml sets the image to %q; VERSION says %q%s", managerImage, version, fix)
	}

	installImages := deploymentImages(t, filepath.Join(root, "dist/install.yaml"))
	if len(installImages) != 1 || installImages[0] != managerImage {
		t.Errorf("dist/install.yaml's Deployment runs %q, config/manager says %q%s", installImages, managerImage, fix)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// deploymentImages returns the container images of every Deployment in a
// multi-document YAML file.
func deploymentImages(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := yamlutil.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var images []string
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return images
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var obj struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Image string `json:"image"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if obj.Kind != "Deployment" {
			continue
		}
		for _, c := range obj.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
	}
}
