package controller

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
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
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

// Test fixtures: one Twilio account with an API key; its credentials live in a
// Secret in each test namespace, and in the operator's default Secret.
const (
	testAccount   = "AC11111111111111111111111111111111"
	testAuthToken = "authTOKENvalue0000000000000000001"
	testKeySid    = "SK11111111111111111111111111111111"
	testKeySecret = "apiKEYsecretVALUE000000000000001"
	testFlow      = "FW11111111111111111111111111111111"
	secretName    = "twilio-credentials"
	syncPeriod    = 2 * time.Second
)

var (
	restCfg      *rest.Config
	k8sClient    client.Client
	testEnv      *envtest.Environment
	scheme       = runtime.NewScheme()
	fake         *twiliofake.Server
	fakeServer   *httptest.Server
	testMetrics  *Metrics
	// twilioMetrics are the Twilio client's metrics (account limiters included).
	twilioMetrics *twilio.Metrics
	metricsReg   *prometheus.Registry
	defaultCreds = types.NamespacedName{Namespace: "operator-system", Name: "default-twilio-credentials"}
	// defaultAccountLabel on a namespace lets it use the default ClusterTwilioAccount.
	defaultAccountLabel = "test.twilio-operator.io/default-account"
	stopManager         func()
	// managerCache is the running manager's cache, for tests of what it holds.
	managerCache cache.Cache
)

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
	fake.AddAccount(testAccount, testAuthToken)
	fake.AddAPIKey(testAccount, testKeySid, testKeySecret)
	fakeServer = httptest.NewServer(fake)

	metricsReg = prometheus.NewRegistry()
	testMetrics = NewMetrics(metricsReg)
	twilioMetrics = twilio.NewMetrics(metricsReg)

	Expect(k8sClient.Create(context.Background(), &corev1.Namespace{ObjectMeta: ctrlObjectMeta(defaultCreds.Namespace, "")})).To(Succeed())
	Expect(k8sClient.Create(context.Background(), credentialsSecret(defaultCreds.Namespace, defaultCreds.Name, testKeySecret))).To(Succeed())
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

// startManager runs a manager with the reconciler against the fake, as
// cmd/manager wires it, and returns a function that stops it and waits.
func startManager() func() {
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         map[client.Object]cache.ByObject{SecretMetadata(): {Transform: StripSecretMetadata}},
		},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	Expect(err).NotTo(HaveOccurred())
	factory, err := twilio.NewFactory(twilio.Options{
		BaseURL: fakeServer.URL, RequestsPerSecond: 500, Burst: 50, Timeout: time.Second,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 500 * time.Millisecond, Metrics: twilioMetrics,
	})
	Expect(err).NotTo(HaveOccurred())
	r := &ConversationWebhookReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("conversation-webhook-operator"),
		Twilio:   factory, DefaultAccount: defaultAccount, SyncPeriod: syncPeriod,
		Clock: clock.RealClock{}, Metrics: testMetrics,
	}
	ctx, cancel := context.WithCancel(context.Background())
	Expect(r.SetupWithManager(ctx, mgr, 10)).To(Succeed())
	setupStatusMetrics(mgr)
	for _, cluster := range []bool{false, true} {
		a := &AccountReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Verifier: factory,
			SyncPeriod: syncPeriod, Cluster: cluster}
		Expect(a.SetupWithManager(ctx, mgr)).To(Succeed())
	}
	managerCache = mgr.GetCache()
	done := make(chan struct{})
	go func() {
		defer GinkgoRecover()
		defer close(done)
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	return func() {
		cancel()
		<-done
	}
}

func ctrlObjectMeta(name, namespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace}
}

func credentialsSecret(namespace, name, keySecret string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: ctrlObjectMeta(name, namespace),
		StringData: map[string]string{"accountSid": testAccount, "apiKeySid": testKeySid, "apiKeySecret": keySecret},
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
	Eventually(func() []string { return eventReasons(o) }).WithTimeout(20 * time.Second).Should(ContainElement(reason))
}

func waitGone(o *v1alpha1.ConversationWebhook) {
	GinkgoHelper()
	Eventually(func() bool {
		err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(o), &v1alpha1.ConversationWebhook{})
		return client.IgnoreNotFound(err) == nil && err != nil
	}).WithTimeout(20 * time.Second).Should(BeTrue())
}
