package controller

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names controller-runtime's cache reader looks up for
// client.MatchingFields{field: value} in a List across all namespaces (its
// internal FieldIndexName and KeyToNamespacedKey("", value)). A change there
// makes every such List fail with "index with name field:… does not exist",
// which the envtest suite's conflict and account specs would report.
const (
	fieldIndexPrefix    = "field:"
	allNamespacesPrefix = "__all_namespaces/"
)

// indexClusterWide adds a field index to obj's informer that answers
// client.MatchingFields{field: value} in a List across all namespaces: every
// List of these indexes is one (a SID or an account is looked up cluster-wide).
//
// It is mgr.GetFieldIndexer().IndexField without the second, namespaced key
// IndexField adds for each value of a namespaced object. At 10,000 objects
// that key cost the SID index about 4 MB live (a string and a one-entry set
// per SID), and made the informer's store delete and re-create both sets on
// every update of an object (its fast path keeps an index only when an object
// has exactly one value before and after). A List that names a namespace
// finds nothing in these indexes.
func indexClusterWide(ctx context.Context, c cache.Cache, obj client.Object, field string, values func(client.Object) []string) error {
	informer, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false))
	if err != nil {
		return fmt.Errorf("indexing %s: %w", field, err)
	}
	return informer.AddIndexers(toolscache.Indexers{fieldIndexPrefix + field: func(raw any) ([]string, error) {
		o, ok := raw.(client.Object)
		if !ok {
			return nil, fmt.Errorf("indexing %s: %T is not an object", field, raw)
		}
		vals := values(o)
		keys := make([]string, len(vals))
		for i, v := range vals {
			keys[i] = allNamespacesPrefix + v
		}
		return keys, nil
	}})
}
