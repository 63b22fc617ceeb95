//go:build chaos

// Package chaos runs the operator under faults (make test-chaos): random 429s,
// 500s, timeouts and lost create answers on 20% of Twilio requests; objects
// created, edited, replaced, deleted and re-created while webhooks are edited
// and deleted behind the operator's back; managers killed at random, two of
// them with leader election. At the end every object must be Ready and match
// Twilio with exactly one webhook, and deleting them all must empty Twilio.
package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
	"github.com/twilio-operator/conversation-webhook-operator/test/localenv"
)

const (
	account   = "AC00000000000000000000000000000009"
	keySid    = "SK00000000000000000000000000000009"
	keySecret = "chaosKeySecret"
	ns        = "chaos"
	perConv   = 3 // leaves room for replacements under Twilio's five per conversation
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// leaderWatch is a manager's log sink that notices when it becomes leader.
type leaderWatch struct {
	mu     sync.Mutex
	leader bool
	out    *os.File
}

func (w *leaderWatch) Write(p []byte) (int, error) {
	if bytes.Contains(bytes.ToLower(p), []byte("successfully acquired lease")) {
		w.mu.Lock()
		w.leader = true
		w.mu.Unlock()
	}
	return w.out.Write(p)
}

func (w *leaderWatch) isLeader() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leader
}

type managerSlot struct {
	m *localenv.Manager
	w *leaderWatch
}

func TestChaos(t *testing.T) {
	n := envInt("CHAOS_N", 200)
	seed := uint64(envInt("CHAOS_SEED", 20261125))
	churn := time.Duration(envInt("CHAOS_SECONDS", 60)) * time.Second
	rng := rand.New(rand.NewPCG(seed, seed)) //nolint:gosec // reproducible chaos
	root := filepath.Join("..", "..")

	fake := twiliofake.New()
	fake.AddAccount(account, "chaosAuthToken")
	fake.AddAPIKey(account, keySid, keySecret)
	convs := make([]string, (n+perConv-1)/perConv)
	for i := range convs {
		convs[i] = fmt.Sprintf("CH%032x", 0xc0000+i)
		fake.AddConversation(account, convs[i])
	}
	logPath := filepath.Join(root, "bin", "chaos-managers.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	env, err := localenv.Start(localenv.Options{RepoRoot: root, Fake: fake})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Log(err)
		}
	}()
	c := env.Client
	ctx := context.Background()
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "twilio", Namespace: ns},
		StringData: map[string]string{"accountSid": account, "apiKeySid": keySid, "apiKeySecret": keySecret}}))

	args := []string{"--leader-elect", "--leader-election-namespace=" + ns, "--twilio-timeout=2s",
		"--sync-period=30s", "--twilio-rps=200", "--default-credentials-secret=" + ns + "/twilio"}
	start := func() managerSlot {
		w := &leaderWatch{out: logFile}
		m, err := env.StartManager(w, args...)
		must(t, err)
		return managerSlot{m: m, w: w}
	}
	managers := []managerSlot{start(), start()}

	// Faults on 20% of requests from here on, reproducibly for the seed.
	fake.SetRandomFaults(0.2, seed, twiliofake.FaultRateLimited, twiliofake.FaultServerError,
		twiliofake.FaultTimeout, twiliofake.FaultLoseResponse)

	name := func(i int) string { return fmt.Sprintf("hook-%03d", i) }
	object := func(i int) *v1alpha1.ConversationWebhook {
		return &v1alpha1.ConversationWebhook{
			ObjectMeta: metav1.ObjectMeta{Name: name(i), Namespace: ns},
			Spec: v1alpha1.ConversationWebhookSpec{
				ConversationSid: convs[i/perConv], Target: v1alpha1.TargetWebhook,
				URL:     fmt.Sprintf("https://hooks.example.com/%d/v0", i),
				Filters: []v1alpha1.Filter{"onMessageAdded", "onConversationUpdated"},
			},
		}
	}
	for i := range n {
		must(t, c.Create(ctx, object(i)))
	}

	h := &churner{ctx: ctx, c: c, fake: fake, rng: rng, n: n, object: object, managers: managers, start: start,
		actions: map[string]int{}, deleted: map[int]time.Time{}}
	deadline := time.Now().Add(churn)
	for tick := 0; time.Now().Before(deadline); tick++ {
		time.Sleep(100 * time.Millisecond)
		h.step(tick)
		h.recreate()
	}
	actions, deleted := h.actions, h.deleted

	fake.SetRandomFaults(0, 0)
	report(t, "faults injected", fake.FaultCounts())
	report(t, "chaos actions", actions)
	for j := range deleted {
		must(t, eventually(2*time.Minute, func() error {
			err := c.Create(ctx, object(j))
			if apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("%s still being deleted", name(j))
			}
			return err
		}))
	}

	// Every object Ready and matching Twilio, exactly one webhook each.
	if err := eventually(5*time.Minute, func() error { return converged(ctx, c, fake, n) }); err != nil {
		explain(ctx, t, c, fake)
		t.Fatal(err)
	}
	rejected := 0
	for _, r := range fake.Requests() {
		if r.Code == twiliofake.CodeTooManyWebhooks {
			rejected++
		}
	}
	if rejected > 0 {
		t.Errorf("Twilio refused %d creates past five webhooks per conversation", rejected)
	}
	fmt.Printf("chaos: %d objects Ready, %d webhooks in Twilio, one each\n", n, len(fake.Webhooks()))

	must(t, c.DeleteAllOf(ctx, &v1alpha1.ConversationWebhook{}, client.InNamespace(ns)))
	must(t, eventually(3*time.Minute, func() error {
		var list v1alpha1.ConversationWebhookList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(list.Items) > 0 || len(fake.Webhooks()) > 0 {
			return fmt.Errorf("%d objects and %d webhooks left", len(list.Items), len(fake.Webhooks()))
		}
		return nil
	}))
	fmt.Printf("chaos: all objects deleted, Twilio empty\n")
}

// churner makes one random change per tick while faults are injected.
type churner struct {
	ctx      context.Context
	c        client.Client
	fake     *twiliofake.Server
	rng      *rand.Rand
	n        int
	object   func(int) *v1alpha1.ConversationWebhook
	managers []managerSlot
	start    func() managerSlot
	actions  map[string]int
	deleted  map[int]time.Time // objects deleted, and when
}

// About one kill every 10s: long enough for a new leader to take over (the
// lease of a killed leader runs out after 15s) and reconcile under faults.
const killPercentile = 1 // of 100, per 100ms tick: one per ~10s on average

func (h *churner) step(tick int) {
	i := h.rng.IntN(h.n)
	switch p := h.rng.IntN(100); {
	case p < 25:
		if h.update(i, func(o *v1alpha1.ConversationWebhook) {
			o.Spec.URL = fmt.Sprintf("https://hooks.example.com/%d/v%d", i, tick)
		}) {
			h.actions["spec edit (update in place)"]++
		}
	case p < 40:
		if h.update(i, func(o *v1alpha1.ConversationWebhook) { o.Spec.ReplayAfter = ptr.To(int32(h.rng.IntN(50))) }) {
			h.actions["spec edit (replace)"]++
		}
	case p < 50:
		if _, gone := h.deleted[i]; !gone && h.c.Delete(h.ctx, h.object(i)) == nil {
			h.deleted[i] = time.Now()
			h.actions["object deleted"]++
		}
	case p < 65:
		if hooks := h.fake.Webhooks(); len(hooks) > 0 {
			h.fake.DeleteWebhook(hooks[h.rng.IntN(len(hooks))].Sid)
			h.actions["webhook deleted behind the operator's back"]++
		}
	case p < 80:
		// Edits go to webhooks an object has recorded, the ones a person can
		// find in status. The result of a create whose answer was lost,
		// edited before the operator recognised it, is indistinguishable
		// from someone else's webhook: the operator leaves it and warns
		// (envtest "never adopts on a guess"), so it would count as extra here.
		if hooks := recorded(h.ctx, h.c, h.fake); len(hooks) > 0 {
			h.fake.EditWebhook(hooks[h.rng.IntN(len(hooks))], func(w *twiliofake.Webhook) {
				w.URL, w.Filters = "https://tampered.example.com", []string{"onMessageRemoved"}
			})
			h.actions["webhook edited behind the operator's back"]++
		}
	case p < 80+killPercentile:
		h.kill()
	}
}

// kill SIGKILLs the leader (a random manager while none is known) and starts another.
func (h *churner) kill() {
	victim := h.rng.IntN(len(h.managers))
	for j, s := range h.managers {
		if s.w.isLeader() {
			victim = j
		}
	}
	what := "manager killed"
	if h.managers[victim].w.isLeader() {
		what = "leader killed"
	}
	h.managers[victim].m.Kill()
	h.managers[victim] = h.start()
	h.actions[what]++
}

// recreate re-creates deleted objects once their finalizer is done.
func (h *churner) recreate() {
	for j, at := range h.deleted {
		if time.Since(at) > 2*time.Second {
			if err := h.c.Create(h.ctx, h.object(j)); err == nil {
				delete(h.deleted, j)
				h.actions["object re-created"]++
			}
		}
	}
}

func (h *churner) update(i int, change func(*v1alpha1.ConversationWebhook)) bool {
	o := &v1alpha1.ConversationWebhook{}
	if err := h.c.Get(h.ctx, client.ObjectKeyFromObject(h.object(i)), o); err != nil || !o.DeletionTimestamp.IsZero() {
		return false
	}
	change(o)
	return h.c.Update(h.ctx, o) == nil
}

// converged checks the end state: every object Ready at its generation, its
// status and its webhook matching the spec, one webhook per object, none extra.
func converged(ctx context.Context, c client.Client, fake *twiliofake.Server, n int) error {
	var list v1alpha1.ConversationWebhookList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	if len(list.Items) != n {
		return fmt.Errorf("%d objects, want %d", len(list.Items), n)
	}
	hooks := map[string]twiliofake.Webhook{}
	for _, w := range fake.Webhooks() {
		hooks[w.Sid] = w
	}
	owned := map[string]string{}
	for _, o := range list.Items {
		ready := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue || o.Status.ObservedGeneration != o.Generation {
			return fmt.Errorf("%s not Ready: %+v", o.Name, o.Status.Conditions)
		}
		w, ok := hooks[o.Status.Sid]
		if !ok {
			return fmt.Errorf("%s: webhook %s not in Twilio", o.Name, o.Status.Sid)
		}
		if prev, dup := owned[o.Status.Sid]; dup {
			return fmt.Errorf("%s and %s share webhook %s", prev, o.Name, o.Status.Sid)
		}
		owned[o.Status.Sid] = o.Name
		if w.URL != o.Spec.URL || o.Status.Configuration.URL != o.Spec.URL || w.ConversationSid != o.Spec.ConversationSid ||
			!slices.Equal(sorted(w.Filters), []string{"onConversationUpdated", "onMessageAdded"}) ||
			!ptr.Equal(intPtr(w.ReplayAfter), o.Spec.ReplayAfter) || o.Annotations[v1alpha1.AnnotationWebhookSid] != w.Sid {
			return fmt.Errorf("%s does not match Twilio: spec %+v, webhook %+v", o.Name, o.Spec, w)
		}
	}
	if len(hooks) != len(owned) {
		var extra []string
		for sid := range hooks {
			if _, ok := owned[sid]; !ok {
				extra = append(extra, sid)
			}
		}
		return fmt.Errorf("%d webhooks in Twilio for %d objects; not owned: %v", len(hooks), len(owned), extra)
	}
	return nil
}

// recorded lists the webhooks in Twilio that an object names in its webhook-sid annotation.
func recorded(ctx context.Context, c client.Client, fake *twiliofake.Server) []string {
	var list v1alpha1.ConversationWebhookList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, o := range list.Items {
		names[o.Annotations[v1alpha1.AnnotationWebhookSid]] = true
	}
	var out []string
	for _, w := range fake.Webhooks() {
		if names[w.Sid] {
			out = append(out, w.Sid)
		}
	}
	return out
}

// explain prints what led to webhooks no object owns: each one, every request
// made in its conversation, and the events of the objects of that conversation.
func explain(ctx context.Context, t *testing.T, c client.Client, fake *twiliofake.Server) {
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
	var events eventsv1.EventList
	if err := c.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Log(err)
	}
	sort.Slice(events.Items, func(i, j int) bool {
		return events.Items[i].EventTime.Before(&events.Items[j].EventTime)
	})
	for _, w := range fake.Webhooks() {
		if owned[w.Sid] {
			continue
		}
		t.Logf("unowned webhook %s: conversation %s url %s replayAfter %v created %s",
			w.Sid, w.ConversationSid, w.URL, intPtr(w.ReplayAfter), w.DateCreated.Format(time.RFC3339Nano))
		for _, r := range fake.Requests() {
			if strings.Contains(r.Path, w.ConversationSid) {
				t.Logf("  %s %s %s -> %d %d fault=%q sid=%s url=%s replay=%s", r.Time.Format("15:04:05.000"),
					r.Operation, r.Path, r.Status, r.Code, r.Fault, r.WebhookSid,
					r.Form.Get("Configuration.Url"), r.Form.Get("Configuration.ReplayAfter"))
			}
		}
		for _, o := range list.Items {
			if o.Spec.ConversationSid != w.ConversationSid {
				continue
			}
			t.Logf("  object %s: sid %s annotations %v", o.Name, o.Status.Sid, o.Annotations)
			for _, e := range events.Items {
				if e.Regarding.Name == o.Name {
					t.Logf("    %s %s %s: %s", e.EventTime.Format("15:04:05.000"), e.Type, e.Reason, e.Note)
				}
			}
		}
	}
}

func intPtr(p *int) *int32 {
	if p == nil {
		return nil
	}
	return ptr.To(int32(*p))
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func report[K ~string](t *testing.T, title string, counts map[K]int) {
	t.Helper()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: %s:\n", title)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-45s %d\n", k, counts[K(k)])
	}
	fmt.Print(b.String())
}

func eventually(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
