// Command twilio-fake serves the in-memory Twilio Conversations fake on loopback,
// for running the manager locally without a Twilio account:
//
//	twilio-fake --listen 127.0.0.1:8089 --conversations CH…,CH… &
//	make run ARGS="--twilio-api-url http://127.0.0.1:8089"
//
// Its control API (GET /_fake/webhooks, POST /_fake/conversations, PUT
// /_fake/settings, GET /_fake/stats) is described in package twiliofake.
// --trigger-keywords-in=filters answers trigger keywords as Twilio's OpenAPI
// examples do; --null-fields answers the named fields as JSON null.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twilio-operator/conversation-webhook-operator/internal/twilio/twiliofake"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8089",
		"Address to serve on (keep it on loopback: the control API has no authentication).")
	account := flag.String("account-sid", "AC00000000000000000000000000000000", "Account SID the fake accepts.")
	token := flag.String("auth-token", "demoAuthToken", "Auth token of the account.")
	keySid := flag.String("api-key-sid", "SK00000000000000000000000000000000", "API key SID of the account.")
	keySecret := flag.String("api-key-secret", "demoApiKeySecret", "API key secret.")
	convs := flag.String("conversations", "CH00000000000000000000000000000001,CH00000000000000000000000000000002",
		"Comma-separated conversation SIDs in the default service.")
	anyConv := flag.Bool("any-conversation", false, "Treat every well-formed CH SID as an existing conversation.")
	latency := flag.Duration("latency", 0, "Delay of every answer.")
	keywordsIn := flag.String("trigger-keywords-in", twiliofake.KeywordsInTriggers,
		"Where a trigger webhook's keywords are answered: triggers, or filters (as in Twilio's OpenAPI examples).")
	nullFields := flag.String("null-fields", "",
		"Comma-separated answer fields to answer as JSON null, among: "+strings.Join(twiliofake.NullableFields, ", ")+".")
	flag.Parse()

	fake := twiliofake.New()
	fake.AddAccount(*account, *token)
	fake.AddAPIKey(*account, *keySid, *keySecret)
	for _, c := range strings.Split(*convs, ",") {
		if c = strings.TrimSpace(c); c != "" {
			fake.AddConversation(*account, c)
		}
	}
	fake.SetAnyConversation(*anyConv)
	fake.SetLatency(*latency)
	if err := fake.SetTriggerKeywordsIn(*keywordsIn); err != nil {
		log.Fatal(err)
	}
	var nulls []string
	for _, f := range strings.Split(*nullFields, ",") {
		if f = strings.TrimSpace(f); f != "" {
			nulls = append(nulls, f)
		}
	}
	if err := fake.SetNullFields(nulls...); err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *listen)
	if err != nil {
		log.Fatal(err) //nolint:gocritic // nothing to clean up yet
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(os.Stderr, "twilio-fake: serving http://%s (account %s)\n", ln.Addr(), *account)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
