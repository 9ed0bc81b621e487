#!/usr/bin/env bash
# Install test (issue #15): the `edgecap` package as a user gets it. Packs the tarball with
# `pnpm pack`, installs it with `npm i` (only the npm registry is used) into a fresh folder
# outside the repo, type-checks a tiny embedding app (scripts/install-test/app.ts) with
# `tsc --strict --skipLibCheck false` against the installed package, and runs it: a custom module
# resource + a sim resource synced over TLS to an ingest started from the installed package on
# 127.0.0.1, after checking that importing the library leaves the ingest server unloaded
# (light-import.mjs). Exit 0 only if it ends with captured = received. Runs on the `node` first in PATH.
#
# Needs `pnpm build` done (run first here unless EDGECAP_SKIP_BUILD=1). Keeps the folder on
# failure (path printed); EDGECAP_INSTALL_TEST_KEEP=1 keeps it always.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
here="$repo/scripts/install-test"
echo "install-test: node $(node -v), npm $(npm -v)"

if [ "${EDGECAP_SKIP_BUILD:-0}" != 1 ]; then (cd "$repo" && pnpm build); fi

# Outside the repo, so nothing resolves from the workspace's node_modules.
work=$(mktemp -d "${TMPDIR:-/tmp}/edgecap-install-test.XXXXXX")
case "$work/" in "$repo"/*) echo "install-test: $work is inside the repo" >&2; exit 1 ;; esac
ok=0
cleanup() { if [ $ok = 1 ] && [ "${EDGECAP_INSTALL_TEST_KEEP:-0}" != 1 ]; then rm -rf "$work"; else echo "install-test: left $work"; fi; }
trap cleanup EXIT

# prepack bundles dist/ and copies the protos (packages/edgecap/scripts/build.js).
(cd "$repo/packages/edgecap" && pnpm pack --pack-destination "$work" >/dev/null)
tgz=$(ls "$work"/edgecap-*.tgz)
echo "install-test: packed $(basename "$tgz") ($(du -k "$tgz" | cut -f1) KiB)"

# What ships: the bundle, its declarations, the protos, the bin, README; no build leftovers.
listing=$(tar tzf "$tgz")
bad=$(grep -E '\.tsbuildinfo$|\.map$|^package/src/.*\.ts$|^package/build/|^package/scripts/|node_modules' <<<"$listing" || true)
if [ -n "$bad" ]; then echo "install-test: the tarball holds files it must not:" >&2; echo "$bad" >&2; exit 1; fi
for f in package/dist/index.js package/dist/index.d.ts package/dist/cli.js package/dist/zod-parts.cjs package/bin/edgecap.js package/README.md \
  package/proto/edgecap/sync/v1/sync.proto package/proto/viam/app/datasync/v1/data_sync.proto; do
  grep -qx "$f" <<<"$listing" || { echo "install-test: $f is missing from the tarball" >&2; exit 1; }
done
tar xzf "$tgz" -O package/package.json | node -e '
  const p = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const deps = { ...p.dependencies, ...p.peerDependencies, ...p.optionalDependencies };
  const bad = Object.entries(deps).filter(([n, v]) => n.startsWith("@edgecap/") || /^(workspace:|file:|link:)/.test(v));
  if (p.private || !p.engines?.node || bad.length) { console.error("install-test: package.json not publishable:", p.private ? "private" : "", bad); process.exit(1); }'

cd "$work"
cp "$here/app.ts" "$here/my-sensor.js" "$here/light-import.mjs" .
cat >package.json <<'EOF'
{ "name": "edgecap-embed-app", "private": true, "type": "module" }
EOF
cat >tsconfig.json <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
    "strict": true, "skipLibCheck": false, "types": ["node"]
  },
  "files": ["app.ts"]
}
EOF
# Only the tarball and its declared dependencies (no mongodb, no pg: optional peers), plus the
# app's own dev tools.
major=$(node -p 'process.versions.node.split(".")[0]')
npm i --no-audit --no-fund --loglevel=error "$tgz"
npm i --no-audit --no-fund --loglevel=error -D typescript@~5.9.3 "@types/node@^$major"
for opt in mongodb pg; do
  if [ -e "node_modules/$opt" ]; then echo "install-test: $opt was installed, though optional" >&2; exit 1; fi
done
echo "install-test: installed $(du -sm node_modules | cut -f1) MiB, $(npm ls --all --parseable 2>/dev/null | wc -l) packages (with typescript, @types/node)"

npx tsc -p tsconfig.json
npx edgecap --version >/dev/null
node light-import.mjs
node app.js
ok=1
echo "install-test: OK on node $(node -v)"
