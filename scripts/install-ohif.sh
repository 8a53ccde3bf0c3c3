#!/bin/sh
# Installs the prebuilt OHIF viewer (@ohif/app's dist/, docs/ohif.md) into vendor/ohif/ for
# `medstream serve --ohif`: only the package's own tarball, through npm (which checks it against
# the registry's integrity hash), not its ~1000-package dependency tree, which dist/ does not need.
set -eu
VERSION=3.13.2
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm pack "@ohif/app@$VERSION" --pack-destination "$tmp" --silent >/dev/null
rm -rf vendor/ohif
mkdir -p vendor/ohif
tar -xzf "$tmp/ohif-app-$VERSION.tgz" -C vendor/ohif --strip-components=1
test -f vendor/ohif/dist/index.html
echo "OHIF $VERSION installed in vendor/ohif/dist/ ($(du -sh vendor/ohif | cut -f1))"
