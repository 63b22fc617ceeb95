// Command cwh-import writes ConversationWebhook manifests for webhooks that
// already exist in Twilio, so that a team can commit them to Git and let the
// operator observe (and later manage) them. It only reads from Twilio.
//
//	cwh-import [flags] [IS…/]CH… …
//
// See usage below, or run cwh-import --help.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v1alpha1 "github.com/twilio-operator/conversation-webhook-operator/api/v1alpha1"
	"github.com/twilio-operator/conversation-webhook-operator/internal/importer"
	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio"
)

// Exit codes.
const (
	exitOK = 0
	// exitIncomplete: some webhook was refused or some conversation could not be listed.
	exitIncomplete = 1
	// exitUsage: bad arguments, credentials or output; nothing was imported.
	exitUsage = 2
)

const usage = `cwh-import writes one ConversationWebhook manifest per webhook that already
exists in Twilio, ready to commit to Git. It only reads from Twilio.

Usage:
  cwh-import [flags] SCOPE...
  cwh-import [flags] --file conversations.txt

SCOPE is a conversation SID (CH + 32 hex digits), or IS…/CH… for a conversation
of a named Conversation Service. --file reads one SCOPE per line; blank lines
and # comments are skipped. Every SID is checked before it is sent.

Credentials (never written to a manifest or printed):
  from the environment: TWILIO_ACCOUNT_SID with TWILIO_API_KEY + TWILIO_API_SECRET
  (preferred) or TWILIO_AUTH_TOKEN; or --credentials-file, which replaces the
  environment: a Secret manifest (YAML or JSON; data or stringData) or a KEY=VALUE
  file, with the Secret keys accountSid, apiKeySid, apiKeySecret, authToken.

Each manifest has the webhook-sid annotation (so the operator adopts the webhook
instead of creating one) and a spec from Twilio's answer. By default it says
  managementPolicy: Observe   the operator never writes to Twilio; it reports
                              drift from the spec in the Synced condition
  deletionPolicy: Orphan      deleting the object (or pruning it from Git by Argo
                              CD or Flux) leaves the webhook in Twilio
so that nothing changes or disappears in Twilio before the team has reviewed the
import. --manage writes Full and Delete instead: the operator takes over at once.

A webhook that no ConversationWebhook can express is not written (an unknown
filter name, more than 5 triggers or one over 248 characters, a url that is not
http/https or is over 512 characters, a studio webhook without a flow SID, an
unknown target, a webhook target without filters): cwh-import says which field
and why, goes on with the others, and exits 1 at the end.

Exit status: 0 all imported; 1 some webhook refused or some conversation could
not be listed (the others are written); 2 bad arguments, credentials or output.

Flags:
`

// config is the parsed command line.
type config struct {
	scopes          []twilio.Scope
	credentialsFile string
	apiURL          string
	outDir          string
	force           bool
	rps             float64
	timeout         time.Duration
	opts            importer.Options
}

func main() {
	log.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command, with its environment, output and errors injected.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		say(stderr, "cwh-import:", err)
		return exitUsage
	}
	creds := credentialsFromEnv(getenv)
	if cfg.credentialsFile != "" {
		if creds, err = credentialsFromFile(cfg.credentialsFile); err != nil {
			say(stderr, "cwh-import: credentials file:", err)
			return exitUsage
		}
	}
	factory, err := twilio.NewFactory(twilio.Options{BaseURL: cfg.apiURL, RequestsPerSecond: cfg.rps})
	if err != nil {
		say(stderr, "cwh-import:", err)
		return exitUsage
	}
	api, err := factory.For(creds)
	if err != nil {
		say(stderr, "cwh-import: credentials:", err)
		return exitUsage
	}
	if cfg.outDir != "" {
		if err := os.MkdirAll(cfg.outDir, 0o755); err != nil {
			say(stderr, "cwh-import:", err)
			return exitUsage
		}
	}

	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	objs, refusals, listErr := importer.Manifests(ctx, api, cfg.scopes, cfg.opts)
	code := exitOK
	written, err := write(objs, cfg, stdout, stderr)
	if err != nil {
		say(stderr, "cwh-import:", err)
		code = exitUsage
	}
	for _, r := range refusals {
		say(stderr, r.String())
	}
	if listErr != nil {
		say(stderr, "cwh-import:", listErr)
	}
	say(stderr, fmt.Sprintf("cwh-import: %d manifest(s) written, %d webhook(s) refused", written, len(refusals)))
	if code == exitOK && (len(refusals) > 0 || listErr != nil) {
		code = exitIncomplete
	}
	return code
}

// parseArgs reads flags and scopes; flags and scopes may be mixed.
func parseArgs(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var files []string
	fs := flag.NewFlagSet("cwh-import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		say(fs.Output(), strings.TrimSuffix(usage, "\n"))
		fs.PrintDefaults()
	}
	fs.Func("file", "Read scopes from `PATH`, one per line (# comments and blank lines allowed). Repeatable.",
		func(s string) error { files = append(files, s); return nil })
	fs.StringVar(&cfg.credentialsFile, "credentials-file", "",
		"Read credentials from `PATH`: a Secret manifest or a KEY=VALUE file (replaces the TWILIO_* environment).")
	fs.StringVar(&cfg.apiURL, "twilio-api-url", twilio.DefaultBaseURL, "Twilio Conversations API `URL` (regional hosts, local fakes).")
	fs.StringVar(&cfg.outDir, "out", "", "Write one `DIR`/<name>.yaml per webhook instead of a --- separated stream to stdout.")
	fs.BoolVar(&cfg.force, "force", false, "With --out, overwrite existing files.")
	fs.StringVar(&cfg.opts.Namespace, "namespace", "", "Set metadata.namespace to `NAME` (default: none, for kubectl -n or kustomize).")
	fs.StringVar(&cfg.opts.NamePrefix, "name-prefix", importer.DefaultNamePrefix, "metadata.name is `PREFIX` + the lowercased WH… SID.")
	fs.Func("account", "Write spec.accountRef: `[ClusterTwilioAccount/]NAME` (a TwilioAccount in --namespace, or a ClusterTwilioAccount); "+
		"default: none, the operator's --default-account.", func(v string) error {
		kind, name, cluster := strings.Cut(v, "/")
		ref := &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindNamespaced, Name: v}
		if cluster {
			if kind != string(v1alpha1.AccountKindCluster) {
				return fmt.Errorf("--account %q: the kind before / must be %s", v, v1alpha1.AccountKindCluster)
			}
			ref = &v1alpha1.AccountReference{Kind: v1alpha1.AccountKindCluster, Name: name}
		}
		if errs := validation.IsDNS1123Subdomain(ref.Name); len(errs) > 0 {
			return fmt.Errorf("--account %q: %s", v, strings.Join(errs, "; "))
		}
		cfg.opts.Account = ref
		return nil
	})
	fs.BoolVar(&cfg.opts.Manage, "manage", false,
		"Write managementPolicy: Full and deletionPolicy: Delete (default Observe and Orphan: the operator writes nothing and deletes nothing).")
	fs.Float64Var(&cfg.rps, "twilio-rps", 10,
		"At most this many requests per second to Twilio (one per conversation, and one per further page of 5 webhooks), "+
			"leaving the rest of the account's limit to the operator.")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "Give up on Twilio after this long in all.")

	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	for _, f := range files {
		lines, err := readScopeFile(f)
		if err != nil {
			return cfg, err
		}
		positional = append(positional, lines...)
	}
	seen := map[twilio.Scope]bool{}
	for _, p := range positional {
		sc, err := importer.ParseScope(p)
		if err != nil {
			return cfg, err
		}
		if !seen[sc] {
			seen[sc] = true
			cfg.scopes = append(cfg.scopes, sc)
		}
	}
	if len(cfg.scopes) == 0 {
		return cfg, errors.New("no conversation SID given (arguments or --file); see --help")
	}
	if u, err := url.Parse(cfg.apiURL); err == nil && u.User != nil {
		// Checked here so that no message ever quotes it.
		return cfg, errors.New("--twilio-api-url must not carry credentials")
	}
	if cfg.timeout <= 0 || cfg.rps <= 0 {
		return cfg, errors.New("--timeout and --twilio-rps must be positive")
	}
	return cfg, cfg.opts.Validate()
}

// readScopeFile returns the non-comment lines of a scope file, each prefixed
// with its position for error messages by ParseScope's caller.
func readScopeFile(path string) ([]string, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the user names the file to read
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if _, err := importer.ParseScope(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// write renders the objects to stdout or to one file each in cfg.outDir, and
// warns about urls that carry a user name or password. It returns how many it wrote.
func write(objs []*v1alpha1.ConversationWebhook, cfg config, stdout, stderr io.Writer) (int, error) {
	written := 0
	for _, obj := range objs {
		if u, err := url.Parse(obj.Spec.URL); err == nil && u.User != nil {
			say(stderr, fmt.Sprintf("warning: %s (%s): spec.url carries a user name or password, written to the manifest in clear text",
				obj.Annotations[v1alpha1.AnnotationWebhookSid], obj.Name))
		}
		data, err := importer.YAML(obj)
		if err != nil {
			return written, err
		}
		if cfg.outDir == "" {
			if _, err := fmt.Fprintf(stdout, "---\n%s", data); err != nil {
				return written, err
			}
			written++
			continue
		}
		if err := writeFile(filepath.Join(cfg.outDir, obj.Name+".yaml"), data, cfg.force); err != nil {
			return written, err
		}
		written++
	}
	return written, nil
}

// say writes one line of messages to stderr; a failed write to stderr has
// nowhere else to be reported.
func say(w io.Writer, parts ...interface{}) {
	_, _ = fmt.Fprintln(w, parts...)
}

func writeFile(path string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if !force {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o644) //nolint:gosec // names are checked DNS-1123 names in the user's directory
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists (use --force to overwrite)", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
