// Package rbac runs the reconciler as the operator's ServiceAccount, bound to
// the ClusterRole generated from the controller's markers (config/rbac/role.yaml)
// and to the leader-election Role, against envtest and the Twilio fake: the
// shipped role must be enough for create, drift, replace and delete, and each
// verb the operator needs must be missed when taken away. The tests are in
// rbac_test.go; `make test` runs them.
package rbac
