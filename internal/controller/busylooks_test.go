package controller

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// busyLooks counts patience from the first look turned away, per object, and
// forgets an object whose reconcile ended otherwise.
func TestBusyLooks(t *testing.T) {
	a, b := types.NamespacedName{Namespace: "team-a", Name: "hook"}, types.NamespacedName{Namespace: "team-b", Name: "hook"}
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	const patience = 5 * time.Second
	var busy busyLooks
	if busy.outwaited(a, t0, patience) {
		t.Fatal("an object never turned away has outwaited its patience")
	}
	busy.turnedAway(a, t0)
	busy.turnedAway(a, t0.Add(4*time.Second)) // later bounces keep the first time
	busy.turnedAway(b, t0.Add(3*time.Second))
	for _, tc := range []struct {
		key   types.NamespacedName
		at    time.Duration
		want  bool
		label string
	}{
		{a, 4 * time.Second, false, "a, 4s after its first bounce"},
		{a, 5 * time.Second, true, "a, 5s after its first bounce"},
		{b, 5 * time.Second, false, "b, 2s after its first bounce (another namespace, same name)"},
		{b, 8 * time.Second, true, "b, 5s after its first bounce"},
	} {
		if got := busy.outwaited(tc.key, t0.Add(tc.at), patience); got != tc.want {
			t.Errorf("%s: outwaited %v, want %v", tc.label, got, tc.want)
		}
	}
	busy.done(a)
	if busy.outwaited(a, t0.Add(time.Hour), patience) {
		t.Error("a reconcile that ended otherwise left its object outwaited")
	}
	busy.turnedAway(a, t0.Add(time.Hour))
	if busy.outwaited(a, t0.Add(time.Hour+4*time.Second), patience) {
		t.Error("patience after done counts from the bounce before it")
	}
	if !busy.outwaited(b, t0.Add(time.Hour), patience) {
		t.Error("done for one object forgot another")
	}
}
