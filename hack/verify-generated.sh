#!/usr/bin/env bash
# verify-generated.sh regenerates api/ and config/ and fails if that changed any
# file: a hand edit to a generated file, or markers changed without regenerating.
# It compares the tree before and after, so uncommitted edits count too.
set -euo pipefail
before="$(mktemp -d)"
trap 'rm -rf "$before"' EXIT
cp -r api config charts "$before/"
make --no-print-directory manifests generate >/dev/null
if ! diff -ru "$before/api" api || ! diff -ru "$before/config" config || ! diff -ru "$before/charts" charts; then
  echo "verify: generated files differ from their sources (diff above, old → regenerated)." >&2
  echo "verify: never hand-edit generated files; run 'make manifests generate' and commit." >&2
  exit 1
fi
unformatted="$(gofmt -l $(git ls-files '*.go'))"
if [ -n "$unformatted" ]; then
  echo "verify: gofmt needed: $unformatted" >&2
  exit 1
fi
echo "verify: generated files and formatting are in sync"
