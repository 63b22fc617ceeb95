// Command image builds the manager's image without a Docker engine (make
// image): linux/amd64 and linux/arm64 in one OCI image index, written as an
// OCI layout tarball, plus a docker-archive of the host's platform for kind
// and k3d, and with -push pushed to a registry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/twilio-operator/conversation-webhook-operator/hack/image/imagebuild"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		img       = flag.String("img", "", "Image reference (the Makefile's IMG); required.")
		version   = flag.String("version", "", "org.opencontainers.image.version (default: the VERSION file).")
		source    = flag.String("source", "https://github.com/twilio-operator/conversation-webhook-operator", "org.opencontainers.image.source.")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "Comma-separated os/arch list.")
		ociOut    = flag.String("oci", "dist/image.tar", "Write the image index here as an OCI layout tarball; empty to skip.")
		dockerOut = flag.String("docker", "dist/image-docker.tar", "Write the host platform's image here as a docker-archive; empty to skip.")
		push      = flag.Bool("push", false, "Push the image index to -img (credentials from ~/.docker/config.json).")
	)
	flag.Parse()
	if *img == "" {
		return errors.New("-img is required")
	}
	ref, err := name.NewTag(*img, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-img: %w", err)
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	ctx := context.Background()
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if *version == "" {
		b, err := os.ReadFile(filepath.Join(root, "VERSION"))
		if err != nil {
			return err
		}
		*version = strings.TrimSpace(string(b))
	}
	rev, created, err := imagebuild.GitInfo(ctx, root)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := imagebuild.Build(ctx, imagebuild.Options{
		Dir:         root,
		Package:     "./cmd/manager",
		Platforms:   plats,
		Version:     *version,
		Revision:    rev,
		Created:     created,
		Source:      *source,
		Title:       "conversation-webhook-operator",
		Description: "Manages Twilio Conversations scoped webhooks declaratively with ConversationWebhook objects.",
		Licenses:    "Apache-2.0",
		Log:         os.Stderr,
	})
	if err != nil {
		return err
	}
	if *ociOut != "" {
		if err := os.MkdirAll(filepath.Dir(*ociOut), 0o755); err != nil {
			return err
		}
		if err := imagebuild.WriteOCIArchive(*ociOut, res.Index, ref, created); err != nil {
			return fmt.Errorf("write %s: %w", *ociOut, err)
		}
		fmt.Fprintf(os.Stderr, "wrote %s (OCI layout, %s, %s)\n", *ociOut, *platforms, ref)
	}
	if *dockerOut != "" {
		host := runtime.GOOS + "/" + runtime.GOARCH
		if hostImg, ok := res.Images[host]; ok {
			if err := os.MkdirAll(filepath.Dir(*dockerOut), 0o755); err != nil {
				return err
			}
			if err := imagebuild.WriteDockerArchive(*dockerOut, hostImg, ref); err != nil {
				return fmt.Errorf("write %s: %w", *dockerOut, err)
			}
			fmt.Fprintf(os.Stderr, "wrote %s (docker-archive, %s, %s)\n", *dockerOut, host, ref)
		} else {
			fmt.Fprintf(os.Stderr, "skipped %s: %s is not among the platforms built\n", *dockerOut, host)
		}
	}
	if *push {
		if err := imagebuild.Push(ctx, res.Index, ref); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Fprintf(os.Stderr, "pushed %s\n", ref)
	}
	fmt.Fprintf(os.Stderr, "done in %s\n", time.Since(start).Round(time.Second))
	return nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(s, ",") {
		plat, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil || plat.OS == "" || plat.Architecture == "" {
			return nil, fmt.Errorf("-platforms: %q is not os/arch", p)
		}
		out = append(out, *plat)
	}
	return out, nil
}
