package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// stubLock is a resourcelock.Interface whose writes succeed or fail on demand.
type stubLock struct {
	resourcelock.Interface
	fail bool
}

func (s *stubLock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return s.err() }
func (s *stubLock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return s.err() }
func (s *stubLock) err() error {
	if s.fail {
		return errors.New("conflict")
	}
	return nil
}

func TestFencedLockHeldOnlyWhileRecentlyRenewed(t *testing.T) {
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	inner := &stubLock{}
	l := &fencedLock{Interface: inner, now: func() time.Time { return now }}
	ctx := context.Background()
	steps := []struct {
		name string
		do   func()
		held bool
	}{
		{"never acquired", func() {}, false},
		{"created", func() { _ = l.Create(ctx, resourcelock.LeaderElectionRecord{}) }, true},
		{"9s later", func() { now = now.Add(9 * time.Second) }, true},
		{"renewal failed, 11s after the last one (frozen, then woken)", func() {
			inner.fail = true
			now = now.Add(2 * time.Second)
			_ = l.Update(ctx, resourcelock.LeaderElectionRecord{})
		}, false},
		{"renewed again", func() {
			inner.fail = false
			_ = l.Update(ctx, resourcelock.LeaderElectionRecord{})
		}, true},
	}
	for _, s := range steps {
		s.do()
		if got := l.Held(); got != s.held {
			t.Fatalf("%s: Held() = %v, want %v", s.name, got, s.held)
		}
	}
}

func TestFencedLockForgetsARenewalAcrossAPause(t *testing.T) {
	now := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	l := &fencedLock{Interface: &stubLock{}, now: func() time.Time { return now }}
	_ = l.Update(context.Background(), resourcelock.LeaderElectionRecord{})
	l.beat.Store(now.UnixNano())
	if !l.Held() {
		t.Fatal("just renewed, with a fresh heartbeat: not held")
	}
	now = now.Add(3 * time.Second) // frozen: no heartbeat, though the renewal is 3s old
	if l.Held() {
		t.Fatal("held although the process was paused past the heartbeat limit")
	}
}
