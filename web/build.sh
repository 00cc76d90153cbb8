#!/usr/bin/env bash
# Build the web chat page's vendored libraries: install the versions pinned in
# package-lock.json from npm, then copy their browser builds and licenses into
# src/pollama/web/vendor/. The copied files are committed, so the wheel carries them and
# `pip install` users need no Node. Run it (`make web`) after changing package.json.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
out=../src/pollama/web/vendor
rm -rf "$out"
mkdir -p "$out"
hl=node_modules/@highlightjs/cdn-assets
cp node_modules/marked/lib/marked.umd.js "$out/marked.umd.js"
cp node_modules/marked/LICENSE "$out/marked.LICENSE"
cp node_modules/dompurify/dist/purify.min.js "$out/purify.min.js"
cp node_modules/dompurify/LICENSE "$out/dompurify.LICENSE"
cp "$hl/highlight.min.js" "$out/highlight.min.js"
cp "$hl/styles/github.min.css" "$out/hljs-light.min.css"
cp "$hl/styles/github-dark.min.css" "$out/hljs-dark.min.css"
cp "$hl/LICENSE" "$out/highlight.js.LICENSE"
node -e '
const lock = require("./package-lock.json").packages;
const names = ["marked", "dompurify", "@highlightjs/cdn-assets"];
console.log(names.map(n => `${n} ${lock["node_modules/" + n].version}`).join("\n"));
' > "$out/VERSIONS"
# sourceMappingURL comments point at maps we do not ship; drop them so devtools do not 404.
sed -i '/^\/\/# sourceMappingURL=/d' "$out"/*.js
echo "vendored into $(cd "$out" && pwd):"
cat "$out/VERSIONS"
