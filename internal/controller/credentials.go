package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Field indexes on ConversationWebhook objects.
const (
	// credentialsIndex holds "namespace/name" of the Secret an object uses.
	credentialsIndex = "conversations.twilio-operator.io/credentials-secret"
)

// Secret keys.
const (
	keyAccountSid   = "accountSid"
	keyAuthToken    = "authToken"
	keyAPIKeySid    = "apiKeySid"
	keyAPIKeySecret = "apiKeySecret"
)

// credentialsSecret is the Secret an object's credentials come from: its own
// credentialsSecretRef (always in its namespace), else the default; nil if neither.
func (r *ConversationWebhookReconciler) credentialsSecret(obj *v1alpha1.ConversationWebhook) *types.NamespacedName {
	if ref := obj.Spec.CredentialsSecretRef; ref != nil {
		return &types.NamespacedName{Namespace: obj.Namespace, Name: ref.Name}
	}
	return r.DefaultCredentials
}

// credentialCache keeps the credentials of the Secrets objects use, keyed by
// the Secret's resourceVersion: the data is read from the API server only when
// the Secret changed. Only Secrets named by objects are ever read.
type credentialCache struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]cachedCredentials
}

type cachedCredentials struct {
	resourceVersion string
	creds           twilio.Credentials
}

func (c *credentialCache) get(ref types.NamespacedName, rv string) (twilio.Credentials, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[ref]
	return e.creds, ok && rv != "" && e.resourceVersion == rv
}

func (c *credentialCache) put(ref types.NamespacedName, rv string, creds twilio.Credentials) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[types.NamespacedName]cachedCredentials{}
	}
	c.entries[ref] = cachedCredentials{resourceVersion: rv, creds: creds}
}

// twilioFor returns the Twilio client for the object's credentials. The Secret's
// metadata comes from the metadata-only cache; its data is read from the API
// server when its resourceVersion is new to the operator.
func (r *ConversationWebhookReconciler) twilioFor(ctx context.Context, obj *v1alpha1.ConversationWebhook) (twilio.WebhookAPI, error) {
	ref := r.credentialsSecret(obj)
	if ref == nil {
		return nil, stalled(v1alpha1.ReasonCredentialsMissing,
			errors.New("no spec.credentialsSecretRef, and the operator has no --default-credentials-secret"))
	}
	creds, err := r.readCredentials(ctx, *ref)
	if err != nil {
		return nil, err
	}
	api, err := r.Twilio.For(creds)
	if err != nil {
		return nil, stalled(v1alpha1.ReasonCredentialsMissing, fmt.Errorf("credentials Secret %s: %w", ref, err))
	}
	return api, nil
}

func (r *ConversationWebhookReconciler) readCredentials(ctx context.Context, ref types.NamespacedName) (twilio.Credentials, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := r.Get(ctx, ref, m); err == nil {
		if creds, ok := r.credentials.get(ref, m.ResourceVersion); ok {
			return creds, nil
		}
	}
	secret := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, ref, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return twilio.Credentials{}, stalled(v1alpha1.ReasonCredentialsMissing, fmt.Errorf("credentials Secret %s not found", ref))
		}
		return twilio.Credentials{}, fmt.Errorf("reading credentials Secret %s: %w", ref, err)
	}
	creds := twilio.Credentials{
		AccountSid:   string(secret.Data[keyAccountSid]),
		AuthToken:    string(secret.Data[keyAuthToken]),
		APIKeySid:    string(secret.Data[keyAPIKeySid]),
		APIKeySecret: string(secret.Data[keyAPIKeySecret]),
	}
	r.credentials.put(ref, secret.ResourceVersion, creds)
	return creds, nil
}

func (r *ConversationWebhookReconciler) setupCredentialsIndex(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.ConversationWebhook{}, credentialsIndex, func(o client.Object) []string {
		if ref := r.credentialsSecret(o.(*v1alpha1.ConversationWebhook)); ref != nil {
			return []string{ref.String()}
		}
		return nil
	})
}

// objectsForSecret maps a Secret to the objects whose credentials it holds.
func (r *ConversationWebhookReconciler) objectsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var list v1alpha1.ConversationWebhookList
	key := types.NamespacedName{Namespace: secret.GetNamespace(), Name: secret.GetName()}.String()
	if err := r.List(ctx, &list, client.MatchingFields{credentialsIndex: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing objects that use a Secret", "secret", key)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
