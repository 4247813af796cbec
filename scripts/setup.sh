# Installs what building, running and testing need; sourced by scripts/run and scripts/test.
# Safe to run again: every step checks first and does nothing when its tool is already there.
# Tools go to ~/.cargo/bin and ~/.cache/comfyui-bridge; build outputs to $CARGO_TARGET_DIR.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${COMFYUI_BRIDGE_CACHE:-$HOME/.cache/comfyui-bridge}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export PATH="$HOME/.cargo/bin:$CACHE/tools/node_modules/.bin:$PATH"
CARGO_LEPTOS_VERSION="0.3.11"
BINARYEN_VERSION="132.0.0"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Each clone path and test edit leaves another set of linked test binaries (hundreds of MB each)
# and incremental state behind; a full disk then fails the linker with a bus error. When the
# disk runs low, drop what cargo can relink or rebuild, and keep the compiled dependencies.
prune_target() {
    local free_gb
    mkdir -p "$CARGO_TARGET_DIR"
    free_gb="$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR==2 {print int($4 / 1048576)}')"
    [ "$free_gb" -ge 20 ] && return 0
    say "only ${free_gb} GB free: removing old test binaries and incremental state from $CARGO_TARGET_DIR"
    local profile
    for profile in debug release; do
        [ -d "$CARGO_TARGET_DIR/$profile" ] || continue
        find "$CARGO_TARGET_DIR/$profile/deps" -maxdepth 1 -type f ! -name '*.*' -delete 2>/dev/null || true
        rm -rf "$CARGO_TARGET_DIR/$profile/incremental"
    done
}

setup_rust() {
    prune_target
    local toolchain
    toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")"
    if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1 \
        || ! rustup target list --installed --toolchain "$toolchain" | grep -q wasm32-unknown-unknown; then
        say "installing Rust $toolchain with the wasm32 target"
        rustup toolchain install "$toolchain" --profile minimal \
            --component clippy,rustfmt --target wasm32-unknown-unknown
    fi
    if [ "$(cargo-leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
        say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 10 minutes, once)"
        (cd "$ROOT" && cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked)
    fi
    # cargo-leptos downloads wasm-bindgen when it is missing, which fails offline; the CLI must
    # match the library version in Cargo.lock exactly.
    local wbg
    wbg="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$ROOT/Cargo.lock")"
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg" ]; then
        say "installing wasm-bindgen-cli $wbg (about 4 minutes, once)"
        (cd "$ROOT" && cargo install wasm-bindgen-cli --version "$wbg")
    fi
}

setup_node_tools() {
    if [ "$(wasm-opt --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
        say "installing wasm-opt (binaryen $BINARYEN_VERSION from npm)"
        mkdir -p "$CACHE/tools"
        npm install --prefix "$CACHE/tools" --no-audit --no-fund --silent "binaryen@$BINARYEN_VERSION"
    fi
}

# Builds the bridge and its web app (arguments: `--release`). `--split` puts the pages that are
# loaded lazily (Edit, Chat, Gallery) into wasm files of their own, fetched when first opened.
# `--precompress` writes each web app file's `.br` (brotli's best level) and `.gz`, which the
# server sends as they are; cargo-leptos does it for release builds only. Its gzip made the
# main wasm 504 KB where `gzip -9` makes 433, and browsers on plain HTTP to another host
# (a bridge on the LAN) take gzip only, so those files are made again with `gzip -9`.
build_app() {
    cargo leptos build --split --precompress "$@"
    local gz
    while IFS= read -r -d '' gz; do
        gzip -9 -n -c "${gz%.gz}" > "$gz"
    done < <(find "$ROOT/target/site" -name '*.gz' -print0)
}

setup_python() {
    local venv="$CACHE/venv"
    if [ ! -x "$venv/bin/python" ]; then
        say "creating a Python environment for the SDK tests"
        python3 -m venv "$venv"
    fi
    if ! "$venv/bin/python" -c 'import openai, pytest' >/dev/null 2>&1 \
        || ! cmp -s "$ROOT/tests/sdk/requirements.txt" "$venv/requirements.txt"; then
        say "installing the Python test packages (OpenAI SDK, pytest, an S3 server)"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/tests/sdk/requirements.txt"
        cp "$ROOT/tests/sdk/requirements.txt" "$venv/requirements.txt"
    fi
    export SDK_PYTHON="$venv/bin/python"
}

setup_browser() {
    if [ ! -x /usr/bin/chromium ]; then
        say "installing Chromium (Debian package)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    fi
    if [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ] \
        || [ "$ROOT/end2end/package-lock.json" -nt "$ROOT/end2end/node_modules/.package-lock.json" ]; then
        say "installing the end-to-end test packages"
        (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Commands run when the sourcing script exits, last added first.
EXIT_STEPS=()
on_exit() {
    EXIT_STEPS=("$1" "${EXIT_STEPS[@]}")
    trap 'for step in "${EXIT_STEPS[@]}"; do eval "$step" || true; done' EXIT
}

# A throwaway PostgreSQL (Debian's package, installed when missing) in a temporary directory on
# a free port, removed on exit; its URL in TEST_DATABASE_URL. The server refuses to run as root,
# so as root it runs as the `postgres` user the package creates.
start_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        say "installing PostgreSQL (Debian package)"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
    fi
    local bin port
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    port="$(free_port)"
    PG_DIR="$(mktemp -d)"
    PG_AS=()
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$PG_DIR"
        PG_AS=(runuser -u postgres --)
    fi
    "${PG_AS[@]}" "$bin/initdb" -D "$PG_DIR/data" -U bridge --auth=trust -E UTF8 >/dev/null
    on_exit "\"\${PG_AS[@]}\" \"$bin/pg_ctl\" -D \"$PG_DIR/data\" -m immediate stop >/dev/null 2>&1; rm -rf \"$PG_DIR\""
    # Durability is not under test here: without fsync the suite runs faster.
    "${PG_AS[@]}" "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
        start >/dev/null
    export TEST_DATABASE_URL="postgres://bridge@127.0.0.1:$port/postgres"
}

# An S3-compatible server (moto, from the Python test packages) on a free port, stopped on
# exit; its URL in TEST_S3_ENDPOINT.
start_s3() {
    local port
    port="$(free_port)"
    "$(dirname "$SDK_PYTHON")/moto_server" -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
    local pid=$!
    on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
        sleep 0.1
    done
    export TEST_S3_ENDPOINT="http://127.0.0.1:$port"
}
