package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Environment variables read when no --credentials-file is given.
const (
	envAccountSid = "TWILIO_ACCOUNT_SID"
	envAPIKey     = "TWILIO_API_KEY"
	envAPISecret  = "TWILIO_API_SECRET"
	envAuthToken  = "TWILIO_AUTH_TOKEN"
)

// Secret keys, as the operator reads them from a credentials Secret.
const (
	keyAccountSid   = "accountSid"
	keyAuthToken    = "authToken"
	keyAPIKeySid    = "apiKeySid"
	keyAPIKeySecret = "apiKeySecret"
)

// envAliases maps the environment names an env file may use to Secret keys.
var envAliases = map[string]string{
	envAccountSid: keyAccountSid,
	envAPIKey:     keyAPIKeySid,
	envAPISecret:  keyAPIKeySecret,
	envAuthToken:  keyAuthToken,
}

// credentialsFromEnv reads TWILIO_ACCOUNT_SID with TWILIO_API_KEY and
// TWILIO_API_SECRET, or TWILIO_AUTH_TOKEN.
func credentialsFromEnv(getenv func(string) string) twilio.Credentials {
	return twilio.Credentials{
		AccountSid:   strings.TrimSpace(getenv(envAccountSid)),
		APIKeySid:    strings.TrimSpace(getenv(envAPIKey)),
		APIKeySecret: strings.TrimSpace(getenv(envAPISecret)),
		AuthToken:    strings.TrimSpace(getenv(envAuthToken)),
	}
}

// credentialsFromFile reads a Secret manifest (YAML or JSON, data base64 or
// stringData) or a key=value env file. Errors name the file and keys, never a value.
func credentialsFromFile(path string) (twilio.Credentials, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the user names the file to read
	if err != nil {
		return twilio.Credentials{}, err
	}
	var values map[string]string
	if looksLikeManifest(data) {
		values, err = secretValues(data)
	} else {
		values, err = envValues(data)
	}
	if err != nil {
		return twilio.Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return twilio.Credentials{
		AccountSid:   strings.TrimSpace(values[keyAccountSid]),
		APIKeySid:    strings.TrimSpace(values[keyAPIKeySid]),
		APIKeySecret: strings.TrimSpace(values[keyAPIKeySecret]),
		AuthToken:    strings.TrimSpace(values[keyAuthToken]),
	}, nil
}

// looksLikeManifest says whether a file is a Kubernetes object rather than an env file.
func looksLikeManifest(data []byte) bool {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("{")) {
		return true
	}
	for _, line := range strings.Split(string(trimmed), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "kind:") || strings.HasPrefix(line, "apiVersion:") ||
			strings.HasPrefix(line, "data:") || strings.HasPrefix(line, "stringData:") {
			return true
		}
	}
	return false
}

// secretObject is the part of a Secret manifest holding the keys.
type secretObject struct {
	Kind       string            `json:"kind"`
	Data       map[string][]byte `json:"data"`
	StringData map[string]string `json:"stringData"`
}

// secretValues reads the first Secret of a (possibly multi-document) manifest;
// stringData wins over data, as the API server merges them.
func secretValues(data []byte) (map[string]string, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var s secretObject
		if err := dec.Decode(&s); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("no Secret with data or stringData found")
			}
			// The decoder's message may quote the document: keep it out.
			return nil, errors.New("not a readable Secret manifest (YAML or JSON)")
		}
		if (s.Kind != "" && s.Kind != "Secret") || (len(s.Data) == 0 && len(s.StringData) == 0) {
			continue
		}
		values := map[string]string{}
		for k, v := range s.Data {
			values[k] = string(v)
		}
		for k, v := range s.StringData {
			values[k] = v
		}
		return values, nil
	}
}

// envValues reads KEY=VALUE lines: # comments and blank lines are skipped, an
// "export " prefix and matching quotes around a value are dropped. Keys are the
// Secret keys (accountSid, …) or the TWILIO_* environment names.
func envValues(data []byte) (map[string]string, error) {
	values := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d is not KEY=VALUE", n)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		if alias, ok := envAliases[key]; ok {
			key = alias
		}
		values[key] = value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return values, nil
}
