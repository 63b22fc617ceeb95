package main

import (
	"context"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
)

// leaseValidity is how long after its last renewal this manager counts itself
// the lease's holder: controller-runtime's renew deadline (10s), well inside
// the lease duration (15s) after which another manager may take it.
const leaseValidity = 10 * time.Second

// fencedLock is the leader-election lock, recording when this manager last
// created or renewed the lease. It is the manager's LeaseFence.
type fencedLock struct {
	resourcelock.Interface
	now     func() time.Time
	renewed atomic.Int64 // unix nanoseconds of the last successful create or renewal
	beat    atomic.Int64 // unix nanoseconds of the last heartbeat (watch)
}

// Create takes the lease and records the time.
func (l *fencedLock) Create(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Create(ctx, ler)
	l.mark(err)
	return err
}

// Update renews the lease and records the time.
func (l *fencedLock) Update(ctx context.Context, ler resourcelock.LeaderElectionRecord) error {
	err := l.Interface.Update(ctx, ler)
	l.mark(err)
	return err
}

func (l *fencedLock) mark(err error) {
	if err == nil {
		l.renewed.Store(l.now().UnixNano())
	}
}

// Held is true while the last renewal is younger than leaseValidity and the
// process has not been frozen since: a heartbeat (watch) notices a pause and
// forgets the renewal, so a woken leader writes nothing until it renews again.
// Times are wall-clock, which runs on while a process is stopped.
func (l *fencedLock) Held() bool {
	now := l.now()
	last := l.renewed.Load()
	if beat := l.beat.Load(); beat != 0 && now.Sub(time.Unix(0, beat)) > pauseLimit {
		return false // frozen, and the heartbeat has not run since
	}
	return last != 0 && now.Sub(time.Unix(0, last)) < leaseValidity
}

// pauseLimit is the longest gap between two heartbeats that is not a pause.
const pauseLimit = 2 * time.Second

// watch beats every 250ms until ctx ends; a gap longer than pauseLimit (the
// process was stopped, or starved) forgets the last renewal.
func (l *fencedLock) watch(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	l.beat.Store(l.now().UnixNano())
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			now := l.now()
			if prev := l.beat.Swap(now.UnixNano()); now.Sub(time.Unix(0, prev)) > pauseLimit {
				l.renewed.Store(0)
			}
		}
	}
}

// newFencedLock builds controller-runtime's own lease lock and wraps it.
func newFencedLock(cfg *rest.Config, namespace, id string) (*fencedLock, error) {
	inner, err := leaderelection.NewResourceLock(cfg, quietRecorders{}, leaderelection.Options{
		LeaderElection: true, LeaderElectionID: id, LeaderElectionNamespace: namespace, RenewDeadline: leaseValidity,
	})
	if err != nil {
		return nil, err
	}
	return &fencedLock{Interface: inner, now: time.Now}, nil
}

// quietRecorders records no leader-election events (the manager logs them);
// the lock uses the old events API only.
type quietRecorders struct{}

func (quietRecorders) GetEventRecorderFor(string) record.EventRecorder { return &record.FakeRecorder{} }
func (quietRecorders) GetEventRecorder(string) recorder.EventRecorder  { return nil }
