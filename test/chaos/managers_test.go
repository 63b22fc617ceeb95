//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/test/localenv"
)

// leaseName is the manager's leader-election Lease (cmd/manager).
const leaseName = "conversation-webhook-operator.conversations.twilio-operator.io"

// sink is one manager's log: it notices when the manager becomes leader and
// when it loses the lease, and keeps the last lines for a report.
type sink struct {
	mu     sync.Mutex
	out    io.Writer
	leader bool
	lost   bool
	tail   []string
}

func (s *sink) Write(p []byte) (int, error) {
	low := bytes.ToLower(p)
	s.mu.Lock()
	if bytes.Contains(low, []byte("successfully acquired lease")) {
		s.leader = true
	}
	if bytes.Contains(low, []byte("leader election lost")) {
		s.leader, s.lost = false, true
	}
	s.tail = append(s.tail, strings.Split(strings.TrimSpace(string(p)), "\n")...)
	if len(s.tail) > 40 {
		s.tail = s.tail[len(s.tail)-20:]
	}
	s.mu.Unlock()
	return s.out.Write(p)
}

func (s *sink) state() (leader, lost bool, tail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := max(len(s.tail)-5, 0)
	return s.leader, s.lost, strings.Join(s.tail[n:], "\n    ")
}

// member is one manager process and what we did to it.
type member struct {
	id      int
	m       *localenv.Manager
	log     *sink
	signal  string    // the last signal we sent that ends it: SIGKILL or SIGTERM
	frozen  bool      // SIGSTOPped, not yet SIGCONTed
	thawed  bool      // SIGCONTed after a freeze: losing the lease and exiting is expected
	thawAt  time.Time // when to SIGCONT
	lostTo  int       // the manager that led when it was woken: it must not write after
	started time.Time

	closeFront func() // its own port on the front
}

func (m *member) leading() bool {
	leader, _, _ := m.log.state()
	return leader && !m.frozen && !m.thawed && m.signal == ""
}

// fleet runs two managers with leader election and disrupts them: SIGKILL of
// the leader timed to land mid-create (its Lease then released on its behalf,
// the process being reaped, so the standby takes over at once), SIGTERM of the
// leader (a rolling update), SIGKILL of the standby, and once per long enough
// run a SIGSTOP of the leader for longer than its 15 s lease, then SIGCONT.
type fleet struct {
	ctx   context.Context
	env   *localenv.Env
	c     client.Client
	out   io.Writer
	args  []string
	front *front
	rng   *rand.Rand
	churn time.Duration
	// freeze allows the SIGSTOP of a leader (CHAOS_FREEZE=off: not).
	freeze bool

	members    []*member
	seq        int
	begin      time.Time
	last       time.Time
	nextAt     time.Time // earliest next disruption
	leadFor    time.Duration
	froze      bool
	leaderTime time.Duration
	lastLeader int
	fraction   float64 // of the churn with a leader, set by endChurn
	counts     map[string]int
	unexpected []string
}

func (f *fleet) start() error {
	f.seq++
	s := &sink{out: prefixed(f.out, fmt.Sprintf("[m%d] ", f.seq))}
	addr, stop, err := f.front.listen(f.seq)
	if err != nil {
		return err
	}
	m, err := f.env.StartManager(s, append(slices.Clone(f.args), "--twilio-api-url="+addr)...)
	if err != nil {
		stop()
		return err
	}
	f.members = append(f.members, &member{id: f.seq, m: m, log: s, started: time.Now(), closeFront: stop})
	f.event("m%d started", f.seq)
	return nil
}

// event prints one line of the managers' story.
func (f *fleet) event(format string, args ...any) {
	fmt.Printf("chaos: %s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// prefixed writes each chunk to w after a prefix (the managers share one log file).
func prefixed(w io.Writer, prefix string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		_, err := w.Write(append([]byte(prefix), p...))
		return len(p), err
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (f *fleet) leader() *member {
	for _, m := range f.members {
		if m.leading() {
			return m
		}
	}
	return nil
}

func (f *fleet) standby() *member {
	for _, m := range f.members {
		if !m.leading() && !m.frozen && !m.thawed {
			return m
		}
	}
	return nil
}

// account adds the time since the last call to the time with a leader, if
// there is one; it is called on each tick and just before any disruption.
func (f *fleet) account(now time.Time) {
	if f.begin.IsZero() {
		f.begin, f.last, f.leadFor = now, now, 3*time.Second // the first leader leads 3 s before any disruption
	}
	if l := f.leader(); l != nil {
		f.leaderTime += now.Sub(f.last)
		if l.id != f.lastLeader {
			f.event("m%d leads", l.id)
			f.lastLeader = l.id
		}
	} else if f.lastLeader != 0 {
		f.event("no leader")
		f.lastLeader = 0
	}
	f.last = now
}

// tick accounts time with a leader, reaps exits, thaws a frozen leader when
// due, keeps two live managers and disrupts one when due.
func (f *fleet) tick(disrupt bool) error {
	now := time.Now()
	f.account(now)
	f.reap()
	for _, m := range f.members {
		if m.frozen && now.After(m.thawAt) {
			if l := f.leader(); l != nil {
				m.lostTo = l.id
			}
			if err := m.m.Signal(syscall.SIGCONT); err == nil {
				m.frozen, m.thawed, m.thawAt = false, true, time.Now()
				f.counts["SIGCONT (frozen leader woken)"]++
				f.event("m%d SIGCONT", m.id)
			}
		}
		if m.thawed && now.Sub(m.thawAt) > 30*time.Second {
			m.thawed = false // it kept its lease (no standby took it): a manager like any other
			f.counts["woken leader kept running"]++
		}
	}
	if live := f.live(); live < 2 {
		if err := f.start(); err != nil {
			return err
		}
	}
	if disrupt {
		f.maybeDisrupt(now)
	}
	return nil
}

func (f *fleet) live() int {
	n := 0
	for _, m := range f.members {
		if !m.frozen && !m.thawed {
			n++
		}
	}
	return n
}

// reap drops managers that exited and records any exit we did not cause.
func (f *fleet) reap() {
	kept := f.members[:0]
	for _, m := range f.members {
		select {
		case <-m.m.Exited():
		default:
			kept = append(kept, m)
			continue
		}
		_, lost, tail := m.log.state()
		f.event("m%d exited: %v", m.id, m.m.Err())
		m.closeFront()
		if w := f.front.writesSince(m.id, m.thawAt); m.lostTo != 0 && len(w) > 0 {
			f.unexpected = append(f.unexpected, fmt.Sprintf("manager m%d, woken after m%d took its lease, sent %d writes to Twilio: %v",
				m.id, m.lostTo, len(w), first(w, 5)))
		}
		switch {
		case m.signal != "":
		case m.thawed && lost:
			f.counts["frozen leader exited on waking (lease lost)"]++
		default:
			f.unexpected = append(f.unexpected, fmt.Sprintf("manager m%d exited on its own after %s: %v; last log lines:\n    %s",
				m.id, time.Since(m.started).Round(time.Second), m.m.Err(), tail))
		}
	}
	f.members = kept
}

// maybeDisrupt disrupts a manager once the leader has led for a while. The
// run keeps a leader most of the time: a SIGKILLed leader's Lease is released
// (so the standby takes over within its 2 s retry), and the one freeze, which
// must outlast the 15 s lease, happens only in a run of 40 s or more.
func (f *fleet) maybeDisrupt(now time.Time) {
	l := f.leader()
	if l == nil || now.Before(f.nextAt) || f.frozen() {
		if l == nil {
			f.nextAt = maxTime(f.nextAt, now.Add(f.leadFor))
		}
		return
	}
	left := f.churn - now.Sub(f.begin)
	switch p := f.rng.IntN(100); {
	case !f.froze && f.freeze && f.churn >= 40*time.Second && (p < 35 || now.Sub(f.begin) > f.churn/3) && left > 25*time.Second:
		f.stop(l)
	case p < 75:
		f.kill(l, true)
	case p < 88:
		f.terminate(l)
	default:
		if s := f.standby(); s != nil {
			f.kill(s, false)
		}
	}
	f.leadFor = time.Duration(3000+f.rng.IntN(3000)) * time.Millisecond
	f.nextAt = time.Now().Add(f.leadFor)
}

func (f *fleet) frozen() bool {
	for _, m := range f.members {
		if m.frozen || m.thawed {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// stop SIGSTOPs the leader for 17–20 s, longer than its 15 s lease: the
// standby takes over, and the frozen one, once woken, must not write to Twilio
// before it notices (the end checks catch a duplicate create).
func (f *fleet) stop(l *member) {
	f.awaitCreate(l, 2*time.Second)
	f.account(time.Now())
	if l.m.Signal(syscall.SIGSTOP) != nil {
		return
	}
	l.frozen, f.froze = true, true
	l.thawAt = time.Now().Add(time.Duration(17000+f.rng.IntN(3000)) * time.Millisecond)
	f.counts["SIGSTOP (leader frozen past its lease)"]++
	f.event("m%d SIGSTOP (leader), SIGCONT in %s", l.id, time.Until(l.thawAt).Round(time.Second))
}

// awaitCreate waits, at most d, for a create request of m in flight.
func (f *fleet) awaitCreate(m *member, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if n, _ := f.front.creating(m.id, 0); n > 0 {
			return
		}
	}
}

// kill SIGKILLs a manager. For the leader it first waits (at most 3 s) for a
// create in flight, then counts the kill as mid-create if a create was in
// flight or answered within the last second with a SID no object records.
func (f *fleet) kill(m *member, leader bool) {
	if !leader {
		m.signal = "SIGKILL"
		m.m.Kill()
		f.counts["SIGKILL standby"]++
		f.event("m%d SIGKILL (standby)", m.id)
		return
	}
	f.awaitCreate(m, 3*time.Second)
	f.account(time.Now())
	inFlight, recent := f.front.creating(m.id, time.Second)
	m.signal = "SIGKILL"
	m.m.Kill()
	f.counts["SIGKILL leader"]++
	unrecorded := f.unrecorded(recent)
	if inFlight > 0 || len(unrecorded) > 0 {
		f.counts["SIGKILL leader mid-create"]++
	}
	f.event("m%d SIGKILL (leader): %d creates in flight, %d answered and not recorded", m.id, inFlight, len(unrecorded))
	f.releaseLease()
}

// terminate stops the leader as a rolling update would (SIGINT, graceful: the
// Lease is released on the way out).
func (f *fleet) terminate(m *member) {
	f.awaitCreate(m, 3*time.Second)
	f.account(time.Now())
	inFlight, _ := f.front.creating(m.id, 0)
	m.signal = "SIGTERM"
	if err := m.m.Stop(); err != nil {
		f.unexpected = append(f.unexpected, fmt.Sprintf("manager m%d failed its graceful stop: %v", m.id, err))
	}
	f.counts["SIGTERM leader"]++
	f.event("m%d SIGTERM (leader): %d creates in flight", m.id, inFlight)
	if inFlight > 0 {
		f.counts["SIGTERM leader mid-create"]++
	}
}

// unrecorded returns the SIDs no object names in status or webhook-sid.
func (f *fleet) unrecorded(sids []string) []string {
	if len(sids) == 0 {
		return nil
	}
	var list v1alpha1.ConversationWebhookList
	if err := f.c.List(f.ctx, &list, client.InNamespace(ns)); err != nil {
		return nil
	}
	known := map[string]bool{}
	for _, o := range list.Items {
		known[o.Status.Sid], known[o.Annotations[v1alpha1.AnnotationWebhookSid]] = true, true
	}
	var out []string
	for _, s := range sids {
		if !known[s] {
			out = append(out, s)
		}
	}
	return out
}

// releaseLease does what the killed leader's graceful exit would have done
// (client-go's release: no holder, a one-second lease), so the standby need not
// wait out the 15 s lease of a process known to be dead.
func (f *fleet) releaseLease() {
	if f.leader() != nil {
		return
	}
	var lease coordinationv1.Lease
	if err := f.c.Get(f.ctx, client.ObjectKey{Namespace: ns, Name: leaseName}, &lease); err != nil {
		return
	}
	now := metav1.NowMicro()
	lease.Spec.HolderIdentity = ptr.To("")
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(1))
	lease.Spec.RenewTime, lease.Spec.AcquireTime = &now, &now
	if err := f.c.Update(f.ctx, &lease); err != nil {
		f.event("releasing the Lease: %v", err)
		return
	}
	f.counts["Lease released for a SIGKILLed leader"]++
}

// endChurn ends the churn phase, so leaderFraction covers it alone.
func (f *fleet) endChurn() {
	f.account(time.Now())
	f.fraction = float64(f.leaderTime) / float64(max(f.last.Sub(f.begin), 1))
}

// leaderFraction is the share of the churn phase with a live leader.
func (f *fleet) leaderFraction() float64 { return f.fraction }
