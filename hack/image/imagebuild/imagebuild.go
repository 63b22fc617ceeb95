// Package imagebuild builds the manager's container image without a Docker
// engine and without a network: it cross-compiles a static manager binary per
// platform and assembles an OCI image index on an empty base with
// go-containerregistry. The manager never imports it.
package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// User is the image's user and group: distroless's nonroot.
const User = "65532:65532"

// Entrypoint is the manager binary's path in the image.
const Entrypoint = "/manager"

// Label keys the image carries (OCI image annotations, as config labels).
const (
	LabelSource      = "org.opencontainers.image.source"
	LabelVersion     = "org.opencontainers.image.version"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelCreated     = "org.opencontainers.image.created"
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
	LabelLicenses    = "org.opencontainers.image.licenses"
)

// DefaultPlatforms are the platforms the release image is built for.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// Options says what to build.
type Options struct {
	// Dir is the module root (where go.mod is).
	Dir string
	// Package is the main package to build, relative to Dir.
	Package string
	// Platforms to build; DefaultPlatforms when empty.
	Platforms []v1.Platform
	// Version, Revision, Created and Source fill the org.opencontainers.image labels.
	Version  string
	Revision string
	Created  time.Time
	Source   string
	// Title, Description and Licenses fill the remaining labels.
	Title       string
	Description string
	Licenses    string
	// WorkDir holds the compiled binaries; a temporary directory when empty.
	WorkDir string
	// Log receives one line per step; nil discards them.
	Log io.Writer
}

// Result is a built image: the index and each platform's image.
type Result struct {
	Index  v1.ImageIndex
	Images map[string]v1.Image // by "os/arch"
}

// GitInfo returns HEAD's commit and commit time in dir. SOURCE_DATE_EPOCH,
// when set, overrides the time, as reproducible builds expect.
func GitInfo(ctx context.Context, dir string) (revision string, created time.Time, err error) {
	out, err := git(ctx, dir, "log", "-1", "--format=%H %ct")
	if err != nil {
		return "", time.Time{}, err
	}
	fields := strings.Fields(out)
	if len(fields) != 2 {
		return "", time.Time{}, fmt.Errorf("git log: unexpected output %q", out)
	}
	sec, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git log: commit time %q: %w", fields[1], err)
	}
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		if sec, err = strconv.ParseInt(epoch, 10, 64); err != nil {
			return "", time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
		}
	}
	return fields[0], time.Unix(sec, 0).UTC(), nil
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Build compiles the binary for each platform and assembles the image index.
func Build(ctx context.Context, o Options) (*Result, error) {
	if len(o.Platforms) == 0 {
		o.Platforms = DefaultPlatforms
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "imagebuild-")
		if err != nil {
			return nil, err
		}
		defer func() { _ = os.RemoveAll(dir) }()
		o.WorkDir = dir
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	res := &Result{Images: map[string]v1.Image{}}
	for _, p := range o.Platforms {
		bin := filepath.Join(o.WorkDir, "manager-"+p.OS+"-"+p.Architecture)
		if err := compile(ctx, o, p, bin); err != nil {
			return nil, err
		}
		img, err := image(o, p, bin)
		if err != nil {
			return nil, fmt.Errorf("image for %s/%s: %w", p.OS, p.Architecture, err)
		}
		plat := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plat},
		})
		res.Images[p.OS+"/"+p.Architecture] = img
	}
	res.Index = idx
	return res, nil
}

// GoBuildArgs are the go build arguments, the Dockerfile's and make build's.
var GoBuildArgs = []string{"build", "-trimpath", "-ldflags=-s -w"}

func compile(ctx context.Context, o Options, p v1.Platform, out string) error {
	start := time.Now()
	args := append(append([]string{}, GoBuildArgs...), "-o", out, o.Package)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Variant != "" && p.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w\n%s", p.OS, p.Architecture, err, stderr.String())
	}
	if o.Log != nil {
		_, _ = fmt.Fprintf(o.Log, "built %s for %s/%s in %s\n", o.Package, p.OS, p.Architecture, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

func image(o Options, p v1.Platform, bin string) (v1.Image, error) {
	layer, err := binaryLayer(bin, o.Created)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created}
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			User:       User,
			Entrypoint: []string{Entrypoint},
			WorkingDir: "/",
			Labels: map[string]string{
				LabelSource:      o.Source,
				LabelVersion:     o.Version,
				LabelRevision:    o.Revision,
				LabelCreated:     o.Created.Format(time.RFC3339),
				LabelTitle:       o.Title,
				LabelDescription: o.Description,
				LabelLicenses:    o.Licenses,
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.ConfigFile(base, cfg)
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "CGO_ENABLED=0 GOOS=" + p.OS + " GOARCH=" + p.Architecture + " go " + strings.Join(GoBuildArgs, " ") + " " + o.Package,
			Comment:   "hack/image",
		},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, created)
}

// binaryLayer is one layer: /manager (root-owned, 0755) and an empty /tmp
// (1777), every time stamp the build time, so the layer is reproducible.
func binaryLayer(bin string, mtime time.Time) (v1.Layer, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: mtime, Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(Entrypoint, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// WriteOCIArchive writes the index as an OCI image layout in one tar file
// (an "oci-archive"), named ref: the index.json entry carries ref in the
// org.opencontainers.image.ref.name and io.containerd.image.name
// annotations, which containerd's import reads.
func WriteOCIArchive(path string, idx v1.ImageIndex, ref name.Reference, mtime time.Time) error {
	dir, err := os.MkdirTemp("", "oci-layout-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref.Identifier(),
		"io.containerd.image.name":          ref.Name(),
	})); err != nil {
		return err
	}
	return tarDir(path, dir, mtime)
}

// tarDir writes dir's files into a tar at path, sorted, with fixed owners and times.
func tarDir(path, dir string, mtime time.Time) (err error) {
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			files = append(files, p)
		}
		return nil
	}); err != nil {
		return err
	}
	sort.Strings(files)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	tw := tar.NewWriter(f)
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Mode: 0o644, Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if err := copyFile(tw, p); err != nil {
			return err
		}
	}
	return tw.Close()
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	_, err = io.Copy(w, f)
	return err
}

// WriteDockerArchive writes one platform's image as a docker-archive (what
// docker save writes, tagged ref): kind load image-archive, k3d image import,
// docker load and podman load take it.
func WriteDockerArchive(path string, img v1.Image, ref name.Tag) error {
	return tarball.WriteToFile(path, ref, img)
}

// Push pushes the index to ref with the credentials of the Docker config
// (~/.docker/config.json, as docker login or docker/login-action write it).
func Push(ctx context.Context, idx v1.ImageIndex, ref name.Reference) error {
	return remote.WriteIndex(ref, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain))
}
