package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Secret keys.
const (
	keyAccountSid   = "accountSid"
	keyAuthToken    = "authToken"
	keyAPIKeySid    = "apiKeySid"
	keyAPIKeySecret = "apiKeySecret"
)

// credentialCache keeps the credentials of the Secrets accounts name, keyed by
// the Secret's resourceVersion: the data is read from the API server only when
// the Secret changed. Only Secrets named by accounts are ever read.
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

// read returns the credentials in a Secret and the Secret's resourceVersion
// they were read at. Its metadata comes from the cache (cached, which holds
// Secret metadata only); its data is read from the API server (apiReader) when
// its resourceVersion is new. Values are trimmed of surrounding whitespace
// (files made with echo end in a newline); missing or malformed keys are
// CredentialsMissing, naming the key, never a value.
func (c *credentialCache) read(ctx context.Context, cached, apiReader client.Reader, ref types.NamespacedName) (twilio.Credentials, string, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := cached.Get(ctx, ref, m); err == nil {
		if creds, ok := c.get(ref, m.ResourceVersion); ok {
			return creds, m.ResourceVersion, nil
		}
	}
	return c.readLive(ctx, apiReader, ref)
}

// readLive reads a Secret's credentials from the API server, whatever the
// cache shows.
func (c *credentialCache) readLive(ctx context.Context, apiReader client.Reader, ref types.NamespacedName) (twilio.Credentials, string, error) {
	secret := &corev1.Secret{}
	if err := apiReader.Get(ctx, ref, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return twilio.Credentials{}, "", stalled(v1alpha1.ReasonCredentialsMissing, fmt.Errorf("credentials Secret %s not found", ref))
		}
		return twilio.Credentials{}, "", fmt.Errorf("reading credentials Secret %s: %w", ref, err)
	}
	creds := credentialsOf(secret.Data)
	// Validate's errors name the Secret's keys, never a value.
	if err := creds.Validate(); err != nil {
		return twilio.Credentials{}, "", stalled(v1alpha1.ReasonCredentialsMissing, fmt.Errorf("credentials Secret %s: %w", ref, err))
	}
	c.put(ref, secret.ResourceVersion, creds)
	return creds, secret.ResourceVersion, nil
}

// credentialsOf reads the Secret keys, trimmed.
func credentialsOf(data map[string][]byte) twilio.Credentials {
	v := func(k string) string { return strings.TrimSpace(string(data[k])) }
	return twilio.Credentials{AccountSid: v(keyAccountSid), AuthToken: v(keyAuthToken), APIKeySid: v(keyAPIKeySid), APIKeySecret: v(keyAPIKeySecret)}
}

// SecretMetadata is the object the manager caches Secrets as: metadata only.
func SecretMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	return m
}

// StripSecretMetadata is the cache transform of Secret metadata: the manager
// keeps none of a Secret's annotations or managed fields (a client-side
// kubectl apply stores the whole Secret, data included, in an annotation).
func StripSecretMetadata(obj interface{}) (interface{}, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetAnnotations(nil)
		o.SetManagedFields(nil)
	}
	return obj, nil
}
