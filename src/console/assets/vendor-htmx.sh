#!/bin/sh
# Fetches htmx from its npm package and checks it against the pinned sha256s,
# then writes htmx-$VERSION.min.js next to this script. The file is committed
# and compiled into the binary (include_bytes!), so `cargo build` needs no Node
# and the daemon fetches nothing at run time. Run it only to change the version
# (then update the pins, src/console/assets.rs's HTMX name and docs/console.md).
set -eu
VERSION="2.0.4"
TGZ_SHA256="a34988d1b9f005a458d593aa8d7486537cb878b8ac3b82703db1268983123ecc"
FILE_SHA256="e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447"

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# npm checks the tarball against the registry's integrity hash; we check ours too.
npm pack --silent "htmx.org@$VERSION" >/dev/null
echo "$TGZ_SHA256  htmx.org-$VERSION.tgz" | sha256sum -c -
tar xzf "htmx.org-$VERSION.tgz" package/dist/htmx.min.js
echo "$FILE_SHA256  package/dist/htmx.min.js" | sha256sum -c -
cp package/dist/htmx.min.js "$here/htmx-$VERSION.min.js"
echo "wrote $here/htmx-$VERSION.min.js"
