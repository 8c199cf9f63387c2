#!/usr/bin/env bash
# Builds the web example and serves it on localhost:
#
#   examples/web/run.sh            # build, then serve on http://localhost:8000
#   examples/web/run.sh --build    # build only (into target/web/site)
#   PORT=9000 examples/web/run.sh  # another port
#
# Needs the wasm32-unknown-unknown target (`rustup target add wasm32-unknown-unknown`) and
# wasm-bindgen-cli at the version of the wasm-bindgen crate in Cargo.lock
# (`cargo install wasm-bindgen-cli --version <that version>`). The page fetches the four
# MNIST .gz files from data/ on the same server: they are linked from $MNIST_DIR (default
# data/mnist), never copied into the repository.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
site="$root/target/web/site"
data="${MNIST_DIR:-data/mnist}"

locked="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if ! command -v wasm-bindgen >/dev/null; then
  echo "error: wasm-bindgen not found; install it with: cargo install wasm-bindgen-cli --version $locked" >&2
  exit 1
fi
installed="$(wasm-bindgen --version | awk '{ print $2 }')"
if [ "$installed" != "$locked" ]; then
  echo "error: wasm-bindgen $installed is installed but Cargo.lock has wasm-bindgen $locked;" \
       "run: cargo install wasm-bindgen-cli --version $locked" >&2
  exit 1
fi

cargo build --release --example web --target wasm32-unknown-unknown --no-default-features
rm -rf "$site.tmp"
mkdir -p "$site.tmp/data"
wasm-bindgen --target web --no-typescript --out-dir "$site.tmp/pkg" --out-name web \
  target/wasm32-unknown-unknown/release/examples/web.wasm
cp examples/web/index.html examples/web/app.js examples/web/style.css "$site.tmp/"
missing=0
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [ -f "$data/$name.gz" ]; then
    ln -s "$(cd "$data" && pwd)/$name.gz" "$site.tmp/data/$name.gz"
  else
    missing=1
  fi
done
if [ "$missing" = 1 ]; then
  echo "warning: the four MNIST .gz files are not all in $data (set MNIST_DIR): the page will say so" >&2
fi
rm -rf "$site"
mv "$site.tmp" "$site"
echo "built $site"

if [ "${1:-}" = "--build" ]; then
  exit 0
fi
port="${PORT:-8000}"
echo "serving http://localhost:$port/ (Ctrl-C stops)"
exec python3 -m http.server --bind 127.0.0.1 --directory "$site" "$port"
