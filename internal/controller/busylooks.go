package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// DefaultLookPatience is how long an object's looks may be turned away by its
// busy account before the next reconcile's requests wait for a slot ahead of
// the account's queue.
const DefaultLookPatience = 5 * time.Second

// busyLooks remembers since when each object's look has been turned away by
// its busy account. A look does not wait for a slot (twilio.WithoutWaiting),
// so that an account whose slots are all taken does not hold the workers that
// other accounts' objects need; but while creates queue for the account, none
// is free, and a Ready object's drift check or a spec edit would wait for as
// long as the account stays busy. Once turned away for the patience, the next
// reconcile's requests wait ahead of the queue (twilio.AheadOfQueue), when the
// account's place ahead is free: one worker an account is held so at most.
type busyLooks struct {
	mu    sync.Mutex
	since map[types.NamespacedName]time.Time
}

// turnedAway records that key's look found its account busy at now.
func (b *busyLooks) turnedAway(key types.NamespacedName, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.since == nil {
		b.since = map[types.NamespacedName]time.Time{}
	}
	if _, ok := b.since[key]; !ok {
		b.since[key] = now
	}
}

// done forgets key: its reconcile ended otherwise, or the object is gone.
func (b *busyLooks) done(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.since, key)
}

// outwaited says whether key's looks have been turned away for patience or longer.
func (b *busyLooks) outwaited(key types.NamespacedName, now time.Time, patience time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	since, ok := b.since[key]
	return ok && now.Sub(since) >= patience
}
