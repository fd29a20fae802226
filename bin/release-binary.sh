# Sourced by bin/dss and bin/apinode-admin: prints the path of a release
# binary of this repository, building it first when it is missing or older
# than any source file. Usage: release_binary NAME (REPO must be set).
release_binary() {
    local bin="$REPO/target/release/$1"
    if [[ ! -x "$bin" ]] || [[ -n "$(find "$REPO/crates" "$REPO/src" "$REPO/bin/log4j.properties" "$REPO/Cargo.toml" "$REPO/Cargo.lock" \
            -newer "$bin" -type f -print -quit 2>/dev/null)" ]]; then
        echo "Building $1 (release); the first build takes a few minutes..." >&2
        "$REPO/tools/setup-build-deps"
        (cd "$REPO" && cargo build --release --bin "$1" >&2)
    fi
    echo "$bin"
}
