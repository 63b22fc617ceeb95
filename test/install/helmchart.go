// Package install tests the ways users install the operator: dist/install.yaml,
// the Helm chart, and the RBAC they grant. The chart is rendered and linted
// with Helm's own Go SDK.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
)

// ChartDir is the chart's directory relative to the repository root.
const ChartDir = "charts/conversation-webhook-operator"

func values(valuesFile string) (map[string]interface{}, error) {
	if valuesFile == "" {
		return map[string]interface{}{}, nil
	}
	v, err := chartutil.ReadValuesFile(valuesFile)
	return v, err
}

// RenderChart renders the chart as `helm template` would for a release in
// namespace, with an optional values file, and returns the objects in file order.
func RenderChart(chartDir, valuesFile, release, namespace string) ([]*unstructured.Unstructured, error) {
	files, err := renderFiles(chartDir, valuesFile, release, namespace)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if strings.HasSuffix(name, ".yaml") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []*unstructured.Unstructured
	for _, name := range names {
		objs, err := DecodeYAML([]byte(files[name]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// RenderNotes renders the chart's NOTES.txt, as helm install prints it.
func RenderNotes(chartDir, valuesFile, release, namespace string) (string, error) {
	files, err := renderFiles(chartDir, valuesFile, release, namespace)
	if err != nil {
		return "", err
	}
	for name, text := range files {
		if strings.HasSuffix(name, "/NOTES.txt") {
			return text, nil
		}
	}
	return "", errors.New("the chart has no NOTES.txt")
}

// renderFiles renders every template of the chart, by file name.
func renderFiles(chartDir, valuesFile, release, namespace string) (map[string]string, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	vals, err := values(valuesFile)
	if err != nil {
		return nil, err
	}
	renderVals, err := chartutil.ToRenderValues(chrt, vals,
		chartutil.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true, Revision: 1},
		chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	return engine.Render(chrt, renderVals)
}

// LintChart runs Helm's linter; it returns the messages of error severity.
func LintChart(chartDir, valuesFile, namespace string) ([]string, error) {
	vals, err := values(valuesFile)
	if err != nil {
		return nil, err
	}
	linter := lint.AllWithKubeVersion(chartDir, vals, namespace, nil)
	var errs []string
	for _, m := range linter.Messages {
		if m.Severity >= support.ErrorSev {
			errs = append(errs, m.Error())
		}
	}
	return errs, nil
}

// DecodeYAML splits a multi-document YAML stream into objects, skipping empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]interface{}{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// RepoRoot is the repository root seen from this package's tests.
func RepoRoot() string { return filepath.Join("..", "..") }
