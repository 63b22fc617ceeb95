// Package image tests the manager's image as make image writes it: the OCI
// layout tarball is unpacked and each platform's image checked (user,
// entrypoint, labels, a static /manager for that architecture), and the host
// platform's /manager is run with --help. It also checks that the version is
// the same everywhere a user meets it.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/twilio-operator/conversation-webhook-operator/hack/image/imagebuild"
)

const testRef = "ghcr.io/twilio-operator/conversation-webhook-operator:test"

// built is the image under test, built once for the package.
var built struct {
	once     sync.Once
	err      error
	dir      string // scratch directory
	oci      string // the OCI layout tarball
	revision string
	version  string
}

// imageArchive returns the OCI layout tarball under test: IMAGE_OCI_ARCHIVE
// when set (the release workflow points it at make image's dist/image.tar),
// else one built here for linux/amd64 and linux/arm64 with the same builder.
func imageArchive(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.version = readVersion(t)
		built.dir, built.err = os.MkdirTemp("", "image-test-")
		if built.err != nil {
			return
		}
		if p := os.Getenv("IMAGE_OCI_ARCHIVE"); p != "" {
			built.oci = p
			return
		}
		ctx := context.Background()
		root := repoRoot(t)
		var created time.Time
		built.revision, created, built.err = imagebuild.GitInfo(ctx, root)
		if built.err != nil {
			return
		}
		var res *imagebuild.Result
		res, built.err = imagebuild.Build(ctx, imagebuild.Options{
			Dir: root, Package: "./cmd/manager", WorkDir: built.dir,
			Version: built.version, Revision: built.revision, Created: created,
			Source: "https://github.com/twilio-operator/conversation-webhook-operator", Title: "conversation-webhook-operator",
			Description: "test", Licenses: "Apache-2.0",
		})
		if built.err != nil {
			return
		}
		built.oci = filepath.Join(built.dir, "image.tar")
		built.err = imagebuild.WriteOCIArchive(built.oci, res.Index, name.MustParseReference(testRef), created)
	})
	if built.err != nil {
		t.Fatalf("build the image: %v", built.err)
	}
	return built.oci
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// index unpacks the OCI layout tarball and returns the image index it names.
func index(t *testing.T) v1.ImageIndex {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(imageArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	untar(t, f, dir)
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1 (the multi-arch index)", len(m.Manifests))
	}
	if m.Manifests[0].Annotations["io.containerd.image.name"] == "" {
		t.Error("index.json's entry has no io.containerd.image.name: containerd would import it unnamed")
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("index.json's entry is not an image index: %v", err)
	}
	return idx
}

func TestImageHasBothPlatformsAndRunsAsNonRoot(t *testing.T) {
	idx := index(t)
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s has no platform", desc.Digest)
		}
		plat := desc.Platform.OS + "/" + desc.Platform.Architecture
		seen[plat] = true
		t.Run(plat, func(t *testing.T) {
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, *desc.Platform)
		})
	}
	for _, want := range []string{"linux/amd64", "linux/arm64"} {
		if !seen[want] {
			t.Errorf("the index has no %s image (has %v)", want, seen)
		}
	}
}

func checkImage(t *testing.T, img v1.Image, plat v1.Platform) {
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != plat.OS || cfg.Architecture != plat.Architecture {
		t.Errorf("config says %s/%s, the index %s/%s", cfg.OS, cfg.Architecture, plat.OS, plat.Architecture)
	}
	c := cfg.Config
	if c.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", c.User)
	}
	if len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/manager" {
		t.Errorf("entrypoint %q, want [/manager]", c.Entrypoint)
	}
	if c.WorkingDir != "/" {
		t.Errorf("working dir %q, want /", c.WorkingDir)
	}
	for _, k := range []string{"source", "version", "revision", "created", "title", "description", "licenses"} {
		if c.Labels["org.opencontainers.image."+k] == "" {
			t.Errorf("label org.opencontainers.image.%s is missing", k)
		}
	}
	if got := c.Labels["org.opencontainers.image.version"]; got != built.version {
		t.Errorf("version label %q, the VERSION file %q", got, built.version)
	}
	if built.revision != "" && c.Labels["org.opencontainers.image.revision"] != built.revision {
		t.Errorf("revision label %q, git HEAD %q", c.Labels["org.opencontainers.image.revision"], built.revision)
	}
	if created, err := time.Parse(time.RFC3339, c.Labels["org.opencontainers.image.created"]); err != nil || !created.Equal(cfg.Created.Time) {
		t.Errorf("created label %q (%v), config created %s", c.Labels["org.opencontainers.image.created"], err, cfg.Created.Time)
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 on an empty base", len(layers))
	}
	bin := managerFromLayer(t, layers[0])
	checkStatic(t, bin, plat.Architecture)

	if plat.OS == runtime.GOOS && plat.Architecture == runtime.GOARCH {
		runHelp(t, bin)
	}
}

// managerFromLayer returns /manager's content from the layer, checking that
// it is an executable regular file.
func managerFromLayer(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("the layer has no /manager")
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") != "manager" {
			continue
		}
		if h.Typeflag != tar.TypeReg || h.Mode&0o111 != 0o111 {
			t.Errorf("/manager: type %c mode %o, want a regular file executable by all", h.Typeflag, h.Mode)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// checkStatic checks that bin is a static ELF executable for arch, built
// without cgo and with the fallback CA roots linked in.
func checkStatic(t *testing.T, bin []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("/manager is not ELF: %v", err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("/manager is for %v, want %v", f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("/manager has an ELF interpreter: it is dynamically linked")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("/manager needs shared libraries %v", libs)
	}
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("/manager has no Go build info: %v", err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOARCH"] != arch {
		t.Errorf("/manager built with CGO_ENABLED=%q -trimpath=%q GOARCH=%q, want 0, true, %s",
			settings["CGO_ENABLED"], settings["-trimpath"], settings["GOARCH"], arch)
	}
	found := false
	for _, d := range info.Deps {
		found = found || d.Path == "golang.org/x/crypto/x509roots/fallback"
	}
	if !found {
		t.Error("/manager does not link golang.org/x/crypto/x509roots/fallback: no CA roots on an empty base")
	}
}

// runHelp runs the host platform's /manager with --help: the flag package
// prints the usage and exits 0.
func runHelp(t *testing.T, bin []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("/manager --help: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "-twilio-api-url") {
		t.Errorf("/manager --help does not mention --twilio-api-url:\n%s", out)
	}
}

// TestDockerArchiveLoads checks the docker-archive make image writes for
// kind load image-archive and k3d image import: one image, tagged.
func TestDockerArchiveLoads(t *testing.T) {
	idx := index(t)
	img, err := hostImage(idx)
	if err != nil {
		t.Skip(err)
	}
	tag := name.MustParseReference(testRef).(name.Tag)
	path := filepath.Join(t.TempDir(), "image-docker.tar")
	if err := imagebuild.WriteDockerArchive(path, img, tag); err != nil {
		t.Fatal(err)
	}
	loaded, err := tarball.ImageFromPath(path, &tag)
	if err != nil {
		t.Fatalf("the docker-archive does not load as %s: %v", tag, err)
	}
	want, _ := img.Digest()
	got, _ := loaded.ConfigName()
	if wantCfg, _ := img.ConfigName(); got != wantCfg {
		t.Errorf("the docker-archive's config %s, the index's %s image's %s (manifest %s)", got, runtime.GOARCH, wantCfg, want)
	}
}

func hostImage(idx v1.ImageIndex) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.OS == runtime.GOOS && d.Platform.Architecture == runtime.GOARCH {
			return idx.Image(d.Digest)
		}
	}
	return nil, errors.New("no image for the host platform " + runtime.GOOS + "/" + runtime.GOARCH)
}

func untar(t *testing.T, r io.Reader, dir string) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("tar entry %q escapes the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("tar entry %q has type %c", h.Name, h.Typeflag)
		}
	}
}
