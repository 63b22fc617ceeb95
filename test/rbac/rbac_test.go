package rbac

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/controller"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

const (
	account   = "AC11111111111111111111111111111111"
	authToken = "authTOKENvalue0000000000000000001"
	keySid    = "SK11111111111111111111111111111111"
	keySecret = "apiKEYsecretVALUE000000000000001"
	group     = "conversations.twilio-operator.io"

	timeout = 30 * time.Second
	poll    = 100 * time.Millisecond
	// quiet is how long an operator missing a verb is watched not converging.
	quiet = 4 * time.Second
)

var (
	restCfg  *rest.Config
	admin    client.Client
	scheme   = runtime.NewScheme()
	fake     *twiliofake.Server
	fakeURL  string
	rbacDir  = filepath.Join("..", "..", "config", "rbac")
	crdDir   = filepath.Join("..", "..", "config", "crd", "bases")
	logs     = &testLog{}
	mgrCount int
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true}
	var err error
	if restCfg, err = env.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "starting envtest (KUBEBUILDER_ASSETS: run make test, or see hack/envtest-assets.sh):", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if admin, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		panic(err)
	}
	fake = twiliofake.New()
	fake.AddAccount(account, authToken)
	fake.AddAPIKey(account, keySid, keySecret)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	fakeURL = srv.URL
	return m.Run()
}

// TestShippedRoleConverges runs create, drift, replace and delete as the
// ServiceAccount with exactly the shipped roles, and requires that the API
// server refused the operator nothing at all along the way.
func TestShippedRoleConverges(t *testing.T) {
	g := NewWithT(t)
	op := install(t, "shipped", nil)
	o := op.object("hook", op.convs[0])
	g.Expect(admin.Create(t.Context(), o)).To(Succeed())

	// Create.
	got := op.waitReady(g, o)
	sid := got.Status.Sid
	g.Expect(fake.ConversationWebhooks(op.convs[0])).To(ConsistOf(HaveField("Sid", sid)))
	op.waitEvent(g, o, controller.EventCreated)

	// Drift: the webhook edited in Twilio is put back.
	g.Expect(fake.EditWebhook(sid, func(w *twiliofake.Webhook) { w.URL = "https://drift.example.com" })).To(BeTrue())
	g.Eventually(func() string { w, _ := fake.Webhook(sid); return w.URL }).WithTimeout(timeout).WithPolling(poll).Should(Equal(o.Spec.URL))
	op.waitEvent(g, o, controller.EventDriftCorrected)

	// Replace: a new conversation means a new webhook there and none in the old one.
	g.Eventually(func() error {
		cur := &v1alpha1.ConversationWebhook{}
		if err := admin.Get(t.Context(), client.ObjectKeyFromObject(o), cur); err != nil {
			return err
		}
		cur.Spec.ConversationSid = op.convs[1]
		return admin.Update(t.Context(), cur)
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
	got = op.waitReady(g, o)
	g.Expect(got.Status.ConversationSid).To(Equal(op.convs[1]))
	g.Expect(fake.ConversationWebhooks(op.convs[0])).To(BeEmpty())
	g.Expect(fake.ConversationWebhooks(op.convs[1])).To(ConsistOf(HaveField("Sid", got.Status.Sid)))
	op.waitEvent(g, o, controller.EventReplaced)

	// Delete: the webhook goes, then the finalizer.
	g.Expect(admin.Delete(t.Context(), o)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(admin.Get(t.Context(), client.ObjectKeyFromObject(o), &v1alpha1.ConversationWebhook{}))
	}).WithTimeout(timeout).WithPolling(poll).Should(BeTrue())
	g.Expect(fake.ConversationWebhooks(op.convs[1])).To(BeEmpty())

	g.Expect(op.forbidden()).To(BeEmpty(), "the shipped roles grant everything the operator asks for")
	op.stop()
	g.Expect(op.startErr()).NotTo(HaveOccurred())
	g.Expect(op.forbidden()).To(BeEmpty(), "releasing the leader lease on the way out is allowed too")
}

// TestOneVerbLessFails takes one verb the operator needs away from the shipped
// roles: the API server must refuse the operator that verb, and the operator
// must not converge (or, for events, must record none).
func TestOneVerbLessFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		// leaderElection takes the verb from the leader-election Role, not the ClusterRole.
		leaderElection        bool
		group, resource, verb string
		readyAnyway, noEvents bool
	}{
		{name: "patch-conversationwebhooks", group: group, resource: "conversationwebhooks", verb: "patch"},
		{name: "patch-status", group: group, resource: "conversationwebhooks/status", verb: "patch"},
		{name: "get-secrets", group: "", resource: "secrets", verb: "get"},
		{name: "patch-twilioaccounts-status", group: group, resource: "twilioaccounts/status", verb: "patch"},
		{name: "create-leases", leaderElection: true, group: "coordination.k8s.io", resource: "leases", verb: "create"},
		{name: "create-events", group: "events.k8s.io", resource: "events", verb: "create", readyAnyway: true, noEvents: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			op := install(t, tc.name, func(cr *rbacv1.ClusterRole, le *rbacv1.Role) {
				if tc.leaderElection {
					le.Rules = withoutVerb(t, le.Rules, tc.group, tc.resource, tc.verb)
				} else {
					cr.Rules = withoutVerb(t, cr.Rules, tc.group, tc.resource, tc.verb)
				}
			})
			o := op.object("hook", op.convs[0])
			g.Expect(admin.Create(t.Context(), o)).To(Succeed())
			want := refusal{Verb: tc.verb, Group: tc.group, Resource: tc.resource}
			g.Eventually(op.forbidden).WithTimeout(timeout).WithPolling(poll).Should(ContainElement(want),
				"the API server refuses the operator %s on %s", tc.verb, tc.resource)
			if tc.readyAnyway {
				op.waitReady(g, o)
			} else {
				g.Consistently(func() string { return op.ready(o) }).WithTimeout(quiet).WithPolling(poll).
					ShouldNot(Equal("True/Available"), "an operator without %s on %s converges", tc.verb, tc.resource)
			}
			if tc.noEvents {
				g.Consistently(func() []string { return op.eventReasons(o) }).WithTimeout(quiet).WithPolling(poll).
					Should(BeEmpty(), "events recorded without create on events")
			}
		})
	}
}

// operator is one ServiceAccount with its roles, a tenant namespace with a
// credentials Secret and two conversations, and the manager running as it.
type operator struct {
	name, ns, tenant string
	convs            []string

	mu      sync.Mutex
	refused []refusal
	stop    func()
	err     error
}

// install creates the ServiceAccount, the shipped ClusterRole and leader-election
// Role (read from config/rbac, changed by mutate) with their bindings, a tenant,
// and starts the manager impersonating the ServiceAccount, with leader election.
func install(t *testing.T, name string, mutate func(*rbacv1.ClusterRole, *rbacv1.Role)) *operator {
	t.Helper()
	g := NewWithT(t)
	ctx := t.Context()
	op := &operator{name: name, ns: "op-" + name, tenant: "tenant-" + name}
	logs.attach(t)

	for _, ns := range []string{op.ns, op.tenant} {
		g.Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	sa := &corev1.ServiceAccount{}
	read(t, "service_account.yaml", sa)
	sa.Namespace = op.ns

	cr := &rbacv1.ClusterRole{}
	read(t, "role.yaml", cr)
	cr.Name += "-" + name
	crb := &rbacv1.ClusterRoleBinding{}
	read(t, "role_binding.yaml", crb)
	crb.Name += "-" + name
	crb.RoleRef.Name = cr.Name

	le := &rbacv1.Role{}
	read(t, "leader_election_role.yaml", le)
	le.Namespace = op.ns
	leb := &rbacv1.RoleBinding{}
	read(t, "leader_election_role_binding.yaml", leb)
	leb.Namespace = op.ns

	// As kustomize's namespace transformer does for the real install.
	for _, b := range [][]rbacv1.Subject{crb.Subjects, leb.Subjects} {
		g.Expect(b).To(ConsistOf(HaveField("Name", sa.Name)), "the bindings name the ServiceAccount")
		for i := range b {
			b[i].Namespace = op.ns
		}
	}
	g.Expect(leb.RoleRef.Name).To(Equal(le.Name))
	if mutate != nil {
		mutate(cr, le)
	}
	for _, obj := range []client.Object{sa, cr, crb, le, leb} {
		g.Expect(admin.Create(ctx, obj)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, obj := range []client.Object{crb, cr} {
			_ = admin.Delete(context.Background(), obj)
		}
	})

	g.Expect(admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "twilio-credentials", Namespace: op.tenant},
		StringData: map[string]string{"accountSid": account, "apiKeySid": keySid, "apiKeySecret": keySecret},
	})).To(Succeed())
	g.Expect(admin.Create(ctx, &v1alpha1.TwilioAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "twilio", Namespace: op.tenant},
		Spec:       v1alpha1.TwilioAccountSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: "twilio-credentials"}},
	})).To(Succeed())
	for range 2 {
		sid := twiliofake.NewSid("CH")
		fake.AddConversation(account, sid)
		op.convs = append(op.convs, sid)
	}
	op.start(t, "system:serviceaccount:"+op.ns+":"+sa.Name)
	return op
}

// start runs the manager as user, wired as cmd/manager wires it, with leader
// election in the operator's namespace.
func (op *operator) start(t *testing.T, user string) {
	t.Helper()
	g := NewWithT(t)
	cfg := rest.CopyConfig(restCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	cfg.WrapTransport = op.recordRefusals
	mgrCount++
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        ctrl.Log.WithName(op.name),
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              fmt.Sprintf("cwh-%s-%d", op.name, mgrCount),
		LeaderElectionNamespace:       op.ns,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    config.Controller{SkipNameValidation: ptr.To(true), CacheSyncTimeout: 10 * time.Second},
		Cache:                         controller.CacheOptions(),
	})
	g.Expect(err).NotTo(HaveOccurred())
	factory, err := twilio.NewFactory(twilio.Options{
		BaseURL: fakeURL, RequestsPerSecond: 500, Burst: 50, Timeout: time.Second,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	err = controller.Setup{
		Twilio: factory, SyncPeriod: time.Second, MaxConcurrentReconciles: 10,
		Metrics: controller.NewMetrics(prometheus.NewRegistry()), StatusMetrics: controller.NewStatusMetrics(),
	}.Apply(ctx, mgr)
	g.Expect(err).NotTo(HaveOccurred())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := mgr.Start(ctx)
		op.mu.Lock()
		op.err = err
		op.mu.Unlock()
	}()
	var once sync.Once
	op.stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(func() {
		op.stop()
		op.removeObjects()
	})
	// Objects are created once the manager leads and its caches hold what
	// exists (or after a few seconds if it cannot get there): an object that only
	// a watch can show then shows whether the operator may watch.
	wait, stopWaiting := context.WithTimeout(ctx, 5*time.Second)
	defer stopWaiting()
	select {
	case <-mgr.Elected():
	case <-wait.Done():
	}
	mgr.GetCache().WaitForCacheSync(wait)
}

func (op *operator) startErr() error {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.err
}

// removeObjects deletes what the tenant holds, finalizers and all, so that the
// next test's manager (which watches every namespace) has nothing of it to do.
func (op *operator) removeObjects() {
	ctx := context.Background()
	var list v1alpha1.ConversationWebhookList
	if err := admin.List(ctx, &list, client.InNamespace(op.tenant)); err != nil {
		return
	}
	for i := range list.Items {
		o := &list.Items[i]
		if len(o.Finalizers) > 0 {
			patch := client.MergeFrom(o.DeepCopy())
			o.Finalizers = nil
			_ = admin.Patch(ctx, o, patch)
		}
		_ = admin.Delete(ctx, o)
	}
}

func (op *operator) object(name, conv string) *v1alpha1.ConversationWebhook {
	return &v1alpha1.ConversationWebhook{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: op.tenant},
		Spec: v1alpha1.ConversationWebhookSpec{
			ConversationSid: conv,
			Target:          v1alpha1.TargetWebhook,
			URL:             "https://hooks.example.com/" + op.name,
			Filters:         []v1alpha1.Filter{"onMessageAdded"},
			AccountRef:      &v1alpha1.AccountReference{Name: "twilio"},
		},
	}
}

// ready is the object's Ready condition as "Status/Reason".
func (op *operator) ready(o *v1alpha1.ConversationWebhook) string {
	cur := &v1alpha1.ConversationWebhook{}
	if err := admin.Get(context.Background(), client.ObjectKeyFromObject(o), cur); err != nil {
		return err.Error()
	}
	for _, c := range cur.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady && c.ObservedGeneration == cur.Generation {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return ""
}

// waitReady waits for Ready=True at the object's current generation.
func (op *operator) waitReady(g Gomega, o *v1alpha1.ConversationWebhook) *v1alpha1.ConversationWebhook {
	got := &v1alpha1.ConversationWebhook{}
	g.Eventually(func(g Gomega) {
		g.Expect(op.ready(o)).To(Equal("True/Available"))
		g.Expect(admin.Get(context.Background(), client.ObjectKeyFromObject(o), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	}).WithTimeout(timeout).WithPolling(poll).Should(Succeed(), func() string { return fmt.Sprintf("refused: %v", op.forbidden()) })
	return got
}

func (op *operator) eventReasons(o *v1alpha1.ConversationWebhook) []string {
	var list eventsv1.EventList
	if err := admin.List(context.Background(), &list, client.InNamespace(o.Namespace)); err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == o.Name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func (op *operator) waitEvent(g Gomega, o *v1alpha1.ConversationWebhook, reason string) {
	g.Eventually(func() []string { return op.eventReasons(o) }).WithTimeout(timeout).WithPolling(poll).Should(ContainElement(reason))
}
