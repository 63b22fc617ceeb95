package controller

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

// The parked queue keeps order, ignores a second park, skips objects taken off
// (unpark) and hands out no more than asked.
func TestParkedQueue(t *testing.T) {
	key := func(n string) types.NamespacedName { return types.NamespacedName{Namespace: "ns", Name: n} }
	d := newCreateDispatcher(t.Context(), 0)
	for _, n := range []string{"a", "b", "c", "a", "d"} {
		d.park("AC1", key(n))
	}
	d.park("AC2", key("other-account"))
	d.unpark("AC1", key("b"))
	pop := func(n int) []string {
		var out []string
		for _, k := range d.parked["AC1"].pop(n) {
			out = append(out, k.Name)
		}
		return out
	}
	if got := pop(2); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("first two: %v, want [a c] (b was taken off)", got)
	}
	d.park("AC1", key("a")) // parked again after its wake: at the end
	if got := pop(5); !slices.Equal(got, []string{"d", "a"}) {
		t.Fatalf("the rest: %v, want [d a]", got)
	}
	if got := pop(1); got != nil {
		t.Fatalf("an empty queue gave %v", got)
	}
	if got := d.parked["AC2"].pop(1); len(got) != 1 || got[0].Name != "other-account" {
		t.Fatalf("the other account's queue: %v", got)
	}
}
