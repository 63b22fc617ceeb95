package install

import (
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// BuildKustomization runs kustomize build on dir (a directory on disk with a
// kustomization.yaml) with kustomize's own Go API, and returns the YAML stream.
// Loading is restricted to files under dir, as the kustomize CLI's default.
func BuildKustomization(dir string) ([]byte, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	return m.AsYaml()
}
