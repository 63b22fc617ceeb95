//go:build chaos

package chaos

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
	"github.com/twilio-operator/conversation-webhook-operator/test/localenv"
)

// run is the phase after the churn: settle, check, delete everything.
type run struct {
	t   *testing.T
	cfg settings
	ctx context.Context
	env *localenv.Env
	w   *world
	h   *churner
	a   *annotator
	fl  *fleet

	reported int      // unexpected manager exits already reported
	stalls   []string // objects Stalled for another reason than credentials once the faults stopped
}

// errGiveUp, wrapped in a check's error, ends eventually at once.
var errGiveUp = errors.New("not waiting longer")

// eventually retries check every second until it passes or timeout, keeping
// the managers looked after (exits reaped, a frozen one woken).
func (r *run) eventually(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := r.fl.tick(false); err != nil {
			return err
		}
		r.h.revokeDue()
		err := check()
		if err == nil || time.Now().After(deadline) || errors.Is(err, errGiveUp) {
			return err
		}
		time.Sleep(time.Second)
	}
}

// settle ends the churn: malformed annotations removed, every object unpaused,
// the API key rotated once more (a person's answer to CredentialsInvalid after
// an injected 401), deleted objects re-created; then waits for convergence.
func (r *run) settle() error {
	steps := []struct {
		what    string
		timeout time.Duration
		do      func() error
	}{
		{"removing malformed annotations", time.Minute, r.a.restore},
		{"unpausing", time.Minute, func() error {
			r.h.unpauseDue(true)
			return pending("paused objects", len(r.h.unpause))
		}},
		{"waiting for the last retries", time.Minute, func() error { time.Sleep(15 * time.Second); return nil }},
		{"looking for stalls", time.Minute, r.findStalls},
		{"rotating the API key", time.Minute, func() error { r.h.rotate(true); return nil }},
		{"re-creating deleted objects", 3 * time.Minute, func() error {
			r.h.recreate()
			return pending("objects still being deleted", len(r.h.deleted))
		}},
	}
	for _, s := range steps {
		if err := r.eventually(s.timeout, s.do); err != nil {
			r.summary(nil)
			r.t.Fatalf("%s: %v", s.what, err)
		}
	}
	start := time.Now()
	var last string
	var since time.Time
	if err := r.eventually(r.cfg.settle, func() error {
		err := converged(r.ctx, r.env.Client, r.w, r.cfg.n, r.a.foreign)
		if err == nil || err.Error() != last {
			last, since = fmt.Sprint(err), time.Now()
			return err
		}
		if time.Since(since) > 2*time.Minute {
			return fmt.Errorf("%w: unchanged for 2m: %w", errGiveUp, err)
		}
		return err
	}); err != nil {
		explain(r.ctx, r.t, r.env.Client, r.w.fake, r.a.foreign, r.h.history)
		return fmt.Errorf("no convergence %s after the churn: %w", time.Since(start).Round(time.Second), err)
	}
	fmt.Printf("chaos: converged %s after the churn: %d objects Ready, one webhook each\n",
		time.Since(start).Round(time.Second), r.cfg.n)
	return nil
}

// findStalls records objects Stalled for a reason other than CredentialsInvalid
// once the faults have stopped. The injected faults are transient but for the
// 401s (and the key rotation may revoke a key in use): any other stall, which
// needs a person, is a transient failure taken for a terminal one. The key
// rotation that follows clears the CredentialsInvalid ones, as a person would.
func (r *run) findStalls() error {
	var list v1alpha1.ConversationWebhookList
	if err := r.env.Client.List(r.ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	r.stalls = nil
	for _, o := range list.Items {
		c := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionStalled)
		if c != nil && c.Status == metav1.ConditionTrue && c.Reason != v1alpha1.ReasonCredentialsInvalid {
			r.stalls = append(r.stalls, fmt.Sprintf("%s Stalled/%s: %s", o.Name, c.Reason, c.Message))
			if m := sidConflictRe.FindStringSubmatch(c.Message); c.Reason == v1alpha1.ReasonSidConflict && m != nil {
				r.explainSidConflict(o.Name, m[1], m[2])
			}
		}
	}
	sort.Strings(r.stalls)
	return nil
}

func pending(what string, n int) error {
	if n > 0 {
		return fmt.Errorf("%d %s", n, what)
	}
	return nil
}

// check runs the end checks on the converged state and the request log.
func (r *run) check() {
	var fails []string
	left, err := leftovers(r.ctx, r.env.Client)
	if err != nil {
		r.t.Fatal(err)
	}
	fails = append(fails, prefix("leftover bookkeeping annotation: ", left)...)
	fails = append(fails, prefix("stalled after the faults stopped: ", first(r.stalls, 10))...)
	l := ledgerOf(r.w.fake.Requests(), r.h.owner)
	excess, most := l.excess(r.h.allowed)
	for _, e := range first(excess, 3) {
		var i int
		if _, err := fmt.Sscanf(e, "hook-%d:", &i); err == nil {
			explainCreates(r.ctx, r.t, r.env.Client, r.w.fake.Requests(), i)
		}
	}
	fails = append(fails, prefix("too many creates: ", excess)...)
	fails = append(fails, prefix("path with a malformed SID reached Twilio: ", first(l.badPaths, 10))...)
	if l.refused > 0 {
		fails = append(fails, fmt.Sprintf("Twilio refused %d creates past five webhooks per conversation", l.refused))
	}
	fails = append(fails, r.fl.unexpected...)
	r.reported = len(r.fl.unexpected)
	fails = append(fails, r.h.problems...)
	if got, want := r.fl.counts["SIGKILL leader mid-create"], minKillsMidCreate(r.cfg.churn); got < want {
		fails = append(fails, fmt.Sprintf("only %d SIGKILLs of the leader landed mid-create, want at least %d", got, want))
	}
	r.summary(&most)
	for _, f := range fails {
		r.t.Error(f)
	}
}

func prefix(p string, s []string) []string {
	out := make([]string, 0, len(s))
	for _, x := range s {
		out = append(out, p+x)
	}
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
	}
	return s
}

// deleteAll deletes every object, a tenth of them with deletionPolicy Orphan:
// Twilio must then hold exactly the Orphan objects' webhooks, which the test
// removes. Foreign webhooks no object adopted are removed first.
func (r *run) deleteAll() {
	c := r.env.Client
	orphans := map[string]string{}
	for i := 0; i < r.cfg.n; i += 10 {
		must(r.t, r.eventually(time.Minute, func() error { // the operator may patch it meanwhile
			o := &v1alpha1.ConversationWebhook{}
			if err := c.Get(r.ctx, client.ObjectKey{Namespace: ns, Name: objName(i)}, o); err != nil {
				return err
			}
			o.Spec.DeletionPolicy = v1alpha1.DeletionPolicyOrphan
			orphans[o.Status.Sid] = o.Name
			return c.Update(r.ctx, o)
		}))
	}
	owned := map[string]bool{}
	var list v1alpha1.ConversationWebhookList
	must(r.t, c.List(r.ctx, &list, client.InNamespace(ns)))
	for _, o := range list.Items {
		owned[o.Status.Sid] = true
	}
	for sid := range r.a.foreign {
		if !owned[sid] {
			r.w.fake.DeleteWebhook(sid)
		}
	}
	must(r.t, c.DeleteAllOf(r.ctx, &v1alpha1.ConversationWebhook{}, client.InNamespace(ns)))
	must(r.t, r.eventually(3*time.Minute, func() error {
		var list v1alpha1.ConversationWebhookList
		if err := c.List(r.ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var errs []error
		hooks := r.w.fake.Webhooks()
		for _, w := range hooks {
			if orphans[w.Sid] == "" {
				errs = append(errs, fmt.Errorf("webhook %s (%s) left in Twilio", w.Sid, w.URL))
			}
		}
		if len(list.Items) > 0 || len(hooks) != len(orphans) {
			errs = append(errs, fmt.Errorf("%d objects and %d webhooks left, want 0 and the %d of Orphan objects",
				len(list.Items), len(hooks), len(orphans)))
		}
		return errors.Join(errs...)
	}))
	for sid := range orphans {
		r.w.fake.DeleteWebhook(sid)
	}
	fmt.Printf("chaos: all objects deleted; Twilio held exactly the %d webhooks of Orphan objects, now removed\n", len(orphans))
	for _, e := range r.fl.unexpected[r.reported:] {
		r.t.Error(e)
	}
}

// summary prints what the run did: seed, kills, freezes, faults, moves,
// creates per object and the time with a leader.
func (r *run) summary(mostCreates *int) {
	fmt.Printf("chaos: summary of seed %d (%d objects, %s of churn; reproduce: %s)\n",
		r.cfg.seed, r.cfg.n, r.cfg.churn, r.cfg.command())
	fmt.Printf("  kills mid-create: %d of %d SIGKILLs of the leader (at least %d required)\n",
		r.fl.counts["SIGKILL leader mid-create"], r.fl.counts["SIGKILL leader"], minKillsMidCreate(r.cfg.churn))
	fmt.Printf("  time with a live leader: %.0f%% of the churn\n", 100*r.fl.leaderFraction())
	if mostCreates != nil {
		fmt.Printf("  creates per object: at most %d\n", *mostCreates)
	}
	report("managers", r.fl.counts)
	report("faults injected", r.w.fake.FaultCounts())
	r.fl.front.mu.Lock()
	fmt.Printf("  requests refused past the in-flight cap of %d (429/20429): %d\n", r.fl.front.capacity, r.fl.front.refused)
	r.fl.front.mu.Unlock()
	report("churn (edits, moves by kind, deletions, annotations)", r.h.actions)
}

func report[K ~string](title string, counts map[K]int) {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "  %s:\n", title)
	for _, k := range keys {
		fmt.Fprintf(&b, "    %-60s %d\n", k, counts[K(k)])
	}
	fmt.Print(b.String())
}

// explain prints what led to webhooks no object owns: each one, every request
// made in its conversation, and the events of the objects of that conversation
// and of the object it was made for.
func explain(ctx context.Context, t *testing.T, c client.Client, fake *twiliofake.Server, foreign map[string]bool,
	history map[string][]string) {
	t.Helper()
	var list v1alpha1.ConversationWebhookList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Log(err)
		return
	}
	owned := map[string]bool{}
	for _, o := range list.Items {
		owned[o.Status.Sid] = true
	}
	reqs := fake.Requests()
	for _, w := range fake.Webhooks() {
		if owned[w.Sid] || foreign[w.Sid] {
			continue
		}
		t.Logf("unowned webhook %s: conversation %s target %s url %s flow %s replayAfter %v created %s", w.Sid,
			w.ConversationSid, w.Target, w.URL, w.FlowSid, intPtr(w.ReplayAfter), w.DateCreated.Format(time.RFC3339Nano))
		for _, r := range reqs {
			if strings.Contains(r.Path, w.ConversationSid) {
				t.Logf("  %s", describe(r))
			}
		}
		maker, _ := objectOf(map[string][]string{"Configuration.Url": {w.URL}, "Configuration.FlowSid": {w.FlowSid}})
		var names []string
		for _, o := range list.Items {
			if o.Spec.ConversationSid == w.ConversationSid || o.Name == objName(maker) {
				names = append(names, o.Name)
			}
		}
		// What the churn did to the webhook (one it made itself is in no
		// request) and to those objects.
		for _, k := range append([]string{w.Sid}, names...) {
			for _, line := range history[k] {
				t.Logf("  churn %s: %s", k, line)
			}
		}
		explainObjects(ctx, t, c, names)
	}
}

// sidConflictRe reads a SidConflict message: the webhook, and the object that manages it.
var sidConflictRe = regexp.MustCompile(`webhook (WH[0-9a-fA-F]{32}) is already managed by ConversationWebhook ` + ns + `/(\S+);`)

// explainSidConflict prints what is known of a webhook two objects name: the
// requests that named it or made it, what the churn did to it and to both
// objects, and both objects' creates, state and events.
func (r *run) explainSidConflict(name, sid, other string) {
	t := r.t
	t.Helper()
	t.Logf("%s and %s both name webhook %s; requests naming it:", name, other, sid)
	reqs := r.w.fake.Requests()
	for _, q := range reqs {
		if strings.Contains(q.Path, sid) || q.WebhookSid == sid {
			t.Logf("  %s", describe(q))
		}
	}
	for _, k := range []string{sid, name, other} {
		t.Logf("what the churn did to %s:", k)
		for _, line := range r.h.history[k] {
			t.Logf("  %s", line)
		}
	}
	for _, n := range []string{name, other} {
		var i int
		if _, err := fmt.Sscanf(n, "hook-%d", &i); err == nil {
			explainCreates(r.ctx, t, r.env.Client, reqs, i)
		}
	}
}

// explainCreates prints the create requests and the events of an object that
// made more creates than allowed.
func explainCreates(ctx context.Context, t *testing.T, c client.Client, reqs []twiliofake.Request, i int) {
	t.Helper()
	t.Logf("creates of %s:", objName(i))
	for _, r := range reqs {
		if j, ok := objectOf(r.Form); ok && j == i && r.Operation == twiliofake.OpCreate {
			t.Logf("  %s", describe(r))
		}
	}
	explainObjects(ctx, t, c, []string{objName(i)})
}

func describe(r twiliofake.Request) string {
	return fmt.Sprintf("%s %s %s -> %d %d fault=%q sid=%s url=%s flow=%s replay=%s", r.Time.Format("15:04:05.000"),
		r.Operation, r.Path, r.Status, r.Code, r.Fault, r.WebhookSid, r.Form.Get("Configuration.Url"),
		r.Form.Get("Configuration.FlowSid"), r.Form.Get("Configuration.ReplayAfter"))
}

// explainObjects prints the named objects' state and events.
func explainObjects(ctx context.Context, t *testing.T, c client.Client, names []string) {
	t.Helper()
	var events eventsv1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Log(err)
	}
	sort.Slice(events.Items, func(i, j int) bool { return events.Items[i].EventTime.Before(&events.Items[j].EventTime) })
	for _, name := range names {
		o := &v1alpha1.ConversationWebhook{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, o); err != nil {
			t.Logf("  object %s: %v", name, err)
			continue
		}
		t.Logf("  object %s: sid %s conversation %s annotations %v", o.Name, o.Status.Sid, o.Spec.ConversationSid, o.Annotations)
		for _, e := range events.Items {
			if e.Regarding.Name == o.Name {
				t.Logf("    %s %s %s: %s", e.EventTime.Format("15:04:05.000"), e.Type, e.Reason, e.Note)
			}
		}
	}
}
