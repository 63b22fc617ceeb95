package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Test fixtures: one Twilio account with two API keys. The tenant key's
// credentials live in a Secret in each test namespace; the default key's in the
// operator's default Secret, so a test can tell from the request log which was used.
const (
	testAccount          = "AC11111111111111111111111111111111"
	testAuthToken        = "authTOKENvalue0000000000000000001"
	testKeySid           = "SK11111111111111111111111111111111"
	testKeySecret        = "apiKEYsecretVALUE000000000000001"
	testDefaultKeySid    = "SK22222222222222222222222222222222"
	testDefaultKeySecret = "defaultKEYsecretVALUE00000000002"
	testFlow             = "FW11111111111111111111111111111111"
	secretName           = "twilio-credentials"
	syncPeriod           = 2 * time.Second
)

// Every Eventually and Consistently names its timeout and polling: Gomega's
// defaults (1 s, 10 ms) are too short for a shared 2-core machine.
const (
	// waitTimeout bounds a wait for something the operator does within a few reconciles.
	waitTimeout = 20 * time.Second
	// waitPoll is how often a wait looks.
	waitPoll = 100 * time.Millisecond
	// quietPeriod is how long a claim of absence ("no retry", "no second create")
	// is watched: two jittered sync periods and a little more.
	quietPeriod = 2*syncPeriod + syncPeriod/2
)

var (
	restCfg     *rest.Config
	k8sClient   client.Client
	testEnv     *envtest.Environment
	scheme      = runtime.NewScheme()
	fake        *twiliofake.Server
	fakeServer  *httptest.Server
	testMetrics *Metrics
	// twilioMetrics are the Twilio client's metrics (account limiters included).
	twilioMetrics *twilio.Metrics
	metricsReg    *prometheus.Registry
	defaultCreds  = types.NamespacedName{Namespace: "operator-system", Name: "default-twilio-credentials"}
	// defaultAccountLabel on a namespace lets it use the default ClusterTwilioAccount.
	defaultAccountLabel = "test.twilio-operator.io/default-account"
	// managerCache is the running manager's cache, for tests of what it holds.
	managerCache cache.Cache
	// managerFactory is the running manager's Twilio factory, for tests of its queues.
	managerFactory *twilio.Factory
	// stopManager stops the suite's manager; nil while a spec has it stopped.
	stopManager func()
	// authLog records the Basic-auth user (account or API key SID) of every
	// request the fake receives: the fake's own log keeps only the account.
	authLog = &authRecorder{}
)

// authRecorder records who authenticated each request to the fake.
type authRecorder struct {
	mu      sync.Mutex
	entries []authEntry
}

type authEntry struct {
	User, Method, Path string
}

func (a *authRecorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, _ := r.BasicAuth()
		a.mu.Lock()
		a.entries = append(a.entries, authEntry{User: user, Method: r.Method, Path: r.URL.Path})
		a.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (a *authRecorder) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = nil
}

// usersFor lists, once each, the users that authenticated requests under a conversation.
func (a *authRecorder) usersFor(conv string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var users []string
	for _, e := range a.entries {
		if strings.Contains(e.Path, "/Conversations/"+conv+"/") && !slices.Contains(users, e.User) {
			users = append(users, e.User)
		}
	}
	return users
}

// defaultAccount is the ClusterTwilioAccount the manager uses for objects without accountRef.
const defaultAccount = "default"

// accountName is each tenant's TwilioAccount.
const accountName = "twilio"

func TestController(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(v1alpha1.AddToScheme(scheme)).To(Succeed())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	restCfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(restCfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	fake = twiliofake.New()
	// Objects of earlier specs may still be reconciling (one refused with
	// 20003 is retried once a poll period): a fault that another spec's
	// request could take is refused, so that each spec's faults are its own.
	fake.RequireScopedFaults()
	fake.AddAccount(testAccount, testAuthToken)
	fake.AddAPIKey(testAccount, testKeySid, testKeySecret)
	fake.AddAPIKey(testAccount, testDefaultKeySid, testDefaultKeySecret)
	fakeServer = httptest.NewServer(authLog.wrap(fake))

	metricsReg = prometheus.NewRegistry()
	testMetrics = NewMetrics(metricsReg)
	twilioMetrics = twilio.NewMetrics(metricsReg)

	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: ctrlObjectMeta(defaultCreds.Namespace, "")})).To(Succeed())
	Expect(k8sClient.Create(context.Background(),
		keyCredentials(defaultCreds.Namespace, defaultCreds.Name, testDefaultKeySid, testDefaultKeySecret))).To(Succeed())
	Expect(k8sClient.Create(context.Background(), &v1alpha1.ClusterTwilioAccount{
		ObjectMeta: ctrlObjectMeta(defaultAccount, ""),
		Spec: v1alpha1.ClusterTwilioAccountSpec{
			CredentialsSecretRef: v1alpha1.NamespacedSecretReference{Namespace: defaultCreds.Namespace, Name: defaultCreds.Name},
			Conditions: []v1alpha1.AccountCondition{{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{defaultAccountLabel: "allowed"}}}},
		},
	})).To(Succeed())
	stopManager = startManager()
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	if fakeServer != nil {
		fakeServer.Close()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// managerOptions vary a test manager from the suite's.
type managerOptions struct {
	name        string
	interceptor *interceptor.Funcs
	// twilioURL, twilioTimeout and pendingGrace: see withTwilio.
	twilioURL     string
	twilioTimeout time.Duration
	pendingGrace  time.Duration
}

// managerOption is an option of startManager.
type managerOption func(*managerOptions)

// withName names the manager in its logs.
func withName(name string) managerOption {
	return func(o *managerOptions) { o.name = name }
}

// withInterceptor routes the manager's client (the reconciler's reads and writes
// of objects) through funcs.
func withInterceptor(funcs interceptor.Funcs) managerOption {
	return func(o *managerOptions) { o.interceptor = &funcs }
}

// withTwilio points the manager's Twilio client at url (a handler in front of
// the fake) with a request timeout, and PendingGrace at that timeout plus 5 s,
// as cmd/manager sets it: no create is in flight longer.
func withTwilio(url string, timeout time.Duration) managerOption {
	return func(o *managerOptions) {
		o.twilioURL, o.twilioTimeout, o.pendingGrace = url, timeout, timeout+5*time.Second
	}
}

// startManager runs a manager with the reconciler against the fake, as
// cmd/manager wires it, without leader election, and returns a function that
// stops it and waits (once; later calls return at once).
func startManager(opts ...managerOption) func() {
	GinkgoHelper()
	// Shorter than cmd/manager's (the Twilio timeout plus 5 s): the send window
	// is still PendingGrace less the Twilio timeout. The pending stamp is whole
	// seconds, so up to one second of the window has gone by when the stamp is
	// written.
	o := managerOptions{name: "manager", twilioURL: fakeServer.URL, twilioTimeout: time.Second, pendingGrace: 3 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logf.Log.WithName(o.name),
		Cache:                  CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if o.interceptor != nil {
		funcs := *o.interceptor
		mgrOpts.NewClient = func(cfg *rest.Config, opts client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(cfg, opts)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, funcs), nil
		}
	}
	mgr, err := ctrl.NewManager(restCfg, mgrOpts)
	Expect(err).NotTo(HaveOccurred())
	factory, err := twilio.NewFactory(twilio.Options{
		BaseURL: o.twilioURL, RequestsPerSecond: 500, Burst: 50, Timeout: o.twilioTimeout,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Metrics: twilioMetrics,
	})
	Expect(err).NotTo(HaveOccurred())
	statusGauges = NewStatusMetrics()
	ctx, cancel := context.WithCancel(context.Background())
	err = Setup{
		Twilio: factory, DefaultAccount: defaultAccount, SyncPeriod: syncPeriod, MaxConcurrentReconciles: 10,
		PendingGrace: o.pendingGrace, SendWindow: 2 * time.Second,
		Metrics: testMetrics, StatusMetrics: statusGauges,
	}.Apply(ctx, mgr)
	Expect(err).NotTo(HaveOccurred())
	managerCache, managerFactory = mgr.GetCache(), factory
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

// startSpecManager starts a manager for the current spec and stops it when the
// spec ends, whatever its outcome. The returned function stops it earlier.
func startSpecManager(opts ...managerOption) func() {
	GinkgoHelper()
	stop := startManager(opts...)
	DeferCleanup(stop)
	return stop
}

// stopSuiteManager stops the suite's manager for the rest of the spec; it is
// started again when the spec ends, whatever its outcome.
func stopSuiteManager() {
	GinkgoHelper()
	if stopManager == nil {
		return
	}
	stopManager()
	stopManager = nil
	DeferCleanup(func() {
		if stopManager == nil {
			stopManager = startManager()
		}
	})
}

// resetFake takes away every fault, latency and limit a spec may have set.
func resetFake() {
	// The logs would otherwise grow with every earlier spec's objects, and be
	// copied whole, under the fake's lock, by each count a spec polls.
	fake.ResetLog()
	authLog.reset()
	fake.ClearFaults()
	fake.SetRandomFaults(0, 0)
	fake.SetLatency(0)
	fake.SetMaxInFlight(0)
	fake.SetAccountRate(0, 0, 0)
	Expect(fake.SetTriggerKeywordsIn(twiliofake.KeywordsInTriggers)).To(Succeed())
	Expect(fake.SetNullFields()).To(Succeed())
}

func ctrlObjectMeta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace}
}

// credentialsSecret holds the tenant API key (testKeySid) with the given secret.
func credentialsSecret(namespace, name, keySecret string) *corev1.Secret {
	return keyCredentials(namespace, name, testKeySid, keySecret)
}

// keyCredentials holds an API key of the test account.
func keyCredentials(namespace, name, keySid, secret string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: ctrlObjectMeta(name, namespace),
		StringData: map[string]string{"accountSid": testAccount, "apiKeySid": keySid, "apiKeySecret": secret},
	}
}

func twilioAccount(namespace, name, secret string) *v1alpha1.TwilioAccount {
	return &v1alpha1.TwilioAccount{ObjectMeta: ctrlObjectMeta(name, namespace),
		Spec: v1alpha1.TwilioAccountSpec{CredentialsSecretRef: v1alpha1.SecretReference{Name: secret}}}
}

// tenant is one test's namespace, credentials Secret and conversations.
type tenant struct {
	ns    string
	convs []string
}

func newTenant(conversations int) *tenant {
	t := &tenant{ns: "t-" + utilrand.String(8)}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: ctrlObjectMeta(t.ns, "")}
	ns.Labels = map[string]string{defaultAccountLabel: "allowed"}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	Expect(k8sClient.Create(ctx, credentialsSecret(t.ns, secretName, testKeySecret))).To(Succeed())
	Expect(k8sClient.Create(ctx, twilioAccount(t.ns, accountName, secretName))).To(Succeed())
	// Verified before any test starts: a test that injects faults then fails only its own calls.
	Eventually(func(g Gomega) {
		a := &v1alpha1.TwilioAccount{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: t.ns, Name: accountName}, a)).To(Succeed())
		g.Expect(a.Status.AccountSid).To(Equal(testAccount))
	}).WithTimeout(20 * time.Second).WithPolling(50 * time.Millisecond).Should(Succeed())
	for range conversations {
		sid := twiliofake.NewSid("CH")
		fake.AddConversation(testAccount, sid)
		t.convs = append(t.convs, sid)
	}
	return t
}

// ownAccount adds a Twilio account of the spec's own to the fake (its limiter
// is shared with no other spec) with the conversations, and a TwilioAccount
// named name for it in the tenant's namespace, limited to maxInFlight; it
// returns the conversations.
func (t *tenant) ownAccount(name, acct, key, secret string, maxInFlight int32, conversations int) []string {
	GinkgoHelper()
	fake.AddAccount(acct, "authTOKEN-"+acct) // unused: the Secret holds the API key
	fake.AddAPIKey(acct, key, secret)
	convs := make([]string, conversations)
	for i := range convs {
		convs[i] = twiliofake.NewSid("CH")
		fake.AddConversation(acct, convs[i])
	}
	Expect(k8sClient.Create(context.Background(), &corev1.Secret{ObjectMeta: ctrlObjectMeta(name, t.ns),
		StringData: map[string]string{"accountSid": acct, "apiKeySid": key, "apiKeySecret": secret}})).To(Succeed())
	acc := twilioAccount(t.ns, name, name)
	acc.Spec.Limits = &v1alpha1.AccountLimits{MaxInFlight: ptr.To(maxInFlight)}
	Expect(k8sClient.Create(context.Background(), acc)).To(Succeed())
	return convs
}

// object is a valid webhook-target object in the tenant's first conversation.
func (t *tenant) object(name string, mods ...func(*v1alpha1.ConversationWebhook)) *v1alpha1.ConversationWebhook {
	o := &v1alpha1.ConversationWebhook{
		ObjectMeta: ctrlObjectMeta(name, t.ns),
		Spec: v1alpha1.ConversationWebhookSpec{
			ConversationSid: t.convs[0],
			Target:          v1alpha1.TargetWebhook,
			URL:             "https://hooks.example.com/" + name,
			Filters:         []v1alpha1.Filter{"onMessageAdded", "onParticipantAdded"},
			AccountRef:      &v1alpha1.AccountReference{Name: accountName},
		},
	}
	for _, m := range mods {
		m(o)
	}
	return o
}

func get(o *v1alpha1.ConversationWebhook) *v1alpha1.ConversationWebhook {
	GinkgoHelper()
	out := &v1alpha1.ConversationWebhook{}
	Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(o), out)).To(Succeed())
	return out
}

func condition(o *v1alpha1.ConversationWebhook, t string) string {
	for _, c := range o.Status.Conditions {
		if c.Type == t {
			return fmt.Sprintf("%s/%s", c.Status, c.Reason)
		}
	}
	return ""
}

// waitReady waits until the object is Ready at its current generation and returns it.
func waitReady(o *v1alpha1.ConversationWebhook) *v1alpha1.ConversationWebhook {
	GinkgoHelper()
	var got *v1alpha1.ConversationWebhook
	Eventually(func(g Gomega) {
		got = &v1alpha1.ConversationWebhook{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(o), got)).To(Succeed())
		g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("True/Available"), "conditions: %+v", got.Status.Conditions)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	return got
}

// waitStalled waits for Stalled=True with the reason and returns the object.
func waitStalled(o *v1alpha1.ConversationWebhook, reason string) *v1alpha1.ConversationWebhook {
	GinkgoHelper()
	var got *v1alpha1.ConversationWebhook
	Eventually(func(g Gomega) {
		got = get(o)
		g.Expect(condition(got, v1alpha1.ConditionStalled)).To(Equal("True/"+reason), "conditions: %+v", got.Status.Conditions)
		g.Expect(condition(got, v1alpha1.ConditionReady)).To(Equal("False/" + reason))
	}).WithTimeout(20 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
	return got
}

// objectEvents lists the events about an object.
func objectEvents(o *v1alpha1.ConversationWebhook) []eventsv1.Event {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(context.Background(), &list, client.InNamespace(o.Namespace))).To(Succeed())
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == o.Name {
			out = append(out, e)
		}
	}
	return out
}

// eventReasons lists the reasons of the events about an object.
func eventReasons(o *v1alpha1.ConversationWebhook) []string {
	GinkgoHelper()
	var reasons []string
	for _, e := range objectEvents(o) {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}

// eventNotes lists the notes of the events about an object.
func eventNotes(o *v1alpha1.ConversationWebhook) []string {
	GinkgoHelper()
	var notes []string
	for _, e := range objectEvents(o) {
		notes = append(notes, e.Note)
	}
	return notes
}

func waitEvent(o *v1alpha1.ConversationWebhook, reason string) {
	GinkgoHelper()
	Eventually(func() []string { return eventReasons(o) }).WithTimeout(20 * time.Second).WithPolling(waitPoll).Should(ContainElement(reason))
}

func waitGone(o *v1alpha1.ConversationWebhook) {
	GinkgoHelper()
	Eventually(func() bool {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(o), &v1alpha1.ConversationWebhook{})
		return client.IgnoreNotFound(err) == nil && err != nil
	}).WithTimeout(20 * time.Second).WithPolling(waitPoll).Should(BeTrue())
}
