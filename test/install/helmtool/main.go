// Command helmtool is make helm: it lints the chart with Helm's linter (default
// values and every test/install/testdata/values-*.yaml: all options set, and
// defaultAccount.create with only what it requires) and renders it with the
// defaults to dist/chart-rendered.yaml, using Helm's Go SDK (no helm binary needed).
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	sigsyaml "sigs.k8s.io/yaml"

	"github.com/twilio-operator/conversation-webhook-operator/test/install"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "helm:", err)
		os.Exit(1)
	}
}

func run() error {
	valuesFiles, err := filepath.Glob("test/install/testdata/values-*.yaml")
	if err != nil {
		return err
	}
	if len(valuesFiles) == 0 {
		return errors.New("no test/install/testdata/values-*.yaml: run from the repository root")
	}
	for _, vf := range append([]string{""}, valuesFiles...) {
		errs, err := install.LintChart(install.ChartDir, vf, "conversation-webhook-operator")
		if err != nil {
			return err
		}
		name := vf
		if name == "" {
			name = "default values"
		}
		if len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintln(os.Stderr, "  "+e)
			}
			return fmt.Errorf("lint failed with %s", name)
		}
		fmt.Printf("lint ok: %s\n", name)
	}
	objs, err := install.RenderChart(install.ChartDir, "", "conversation-webhook-operator", "conversation-webhook-operator")
	if err != nil {
		return err
	}
	out := filepath.Join("dist", "chart-rendered.yaml")
	if err := os.MkdirAll("dist", 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close() //nolint:errcheck // checked by the writes
	for _, o := range objs {
		data, err := sigsyaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(f, "---\n%s", data); err != nil {
			return err
		}
		fmt.Printf("  %s %s\n", o.GetKind(), o.GetName())
	}
	fmt.Printf("rendered %d objects to %s\n", len(objs), out)
	return nil
}
