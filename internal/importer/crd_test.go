package importer

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
)

// crdPath is the generated CRD the API server would enforce.
var crdPath = filepath.Join("..", "..", "config", "crd", "bases", "conversations.twilio-operator.io_conversationwebhooks.yaml")

// crdValidator applies what the API server applies to a new ConversationWebhook,
// without one: defaults, the OpenAPI schema, list sets and the CEL rules of the
// generated CRD, and the DNS-1123 rule on metadata.name.
type crdValidator struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

var (
	crdOnce   sync.Once
	crdLoaded *crdValidator
	crdErr    error
)

func loadCRD(t *testing.T) *crdValidator {
	t.Helper()
	crdOnce.Do(func() { crdLoaded, crdErr = readCRD() })
	if crdErr != nil {
		t.Fatalf("loading %s: %v", crdPath, crdErr)
	}
	return crdLoaded
}

func readCRD() (*crdValidator, error) {
	data, err := os.ReadFile(crdPath)
	if err != nil {
		return nil, err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		return nil, err
	}
	var v1 *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == v1alpha1.GroupVersion.Version {
			v1 = v.Schema.OpenAPIV3Schema
		}
	}
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, internal, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, err
	}
	sv, _, err := apiservervalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, err
	}
	return &crdValidator{structural: s, schema: sv, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}, nil
}

// admit validates a manifest as written (YAML) and returns what the API server
// would reject it for.
func (c *crdValidator) admit(t *testing.T, manifest []byte) field.ErrorList {
	t.Helper()
	obj := map[string]interface{}{}
	if err := yaml.Unmarshal(manifest, &obj); err != nil {
		t.Fatalf("manifest is not YAML: %v\n%s", err, manifest)
	}
	structuraldefaulting.Default(obj, c.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, obj, c.schema)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, c.structural, obj)...)
	celErrs, _ := c.cel.Validate(context.Background(), nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	errs = append(errs, celErrs...)
	if meta, ok := obj["metadata"].(map[string]interface{}); ok {
		name, _ := meta["name"].(string)
		for _, msg := range validation.IsDNS1123Subdomain(name) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), name, msg))
		}
	}
	return errs
}

// admitSpec wraps a spec in an object with a valid name and validates it.
func (c *crdValidator) admitSpec(t *testing.T, spec v1alpha1.ConversationWebhookSpec) field.ErrorList {
	t.Helper()
	obj := &v1alpha1.ConversationWebhook{Spec: spec}
	obj.Name = "wh-test"
	data, err := YAML(obj)
	if err != nil {
		t.Fatal(err)
	}
	return c.admit(t, data)
}
