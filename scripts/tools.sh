# Sourced by the scripts that need a tool sesame does not build itself (cargo-fuzz, cargo-deb,
# moto's SQS server, salt-call): where such tools live and how one is installed, once per machine.
#
# They live outside the checkout, in $SESAME_TOOLS (default ~/.cache/sesame/tools), one directory
# per tool and version, so every checkout on the machine - CI's clean clones included - reuses one
# install, and a version bump installs beside the old one instead of over it. `rm -rf` of that
# directory (or another SESAME_TOOLS) gives the clean install path again.
SESAME_TOOLS=${SESAME_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/sesame/tools}

# tool_install DIR INSTALLER: makes sure DIR holds a complete install, running `INSTALLER DIR` (on
# an empty DIR) if it does not. An install holds DIR.lock, so two runs at once install once, and
# counts only once INSTALLER has returned (DIR/.installed), so an interrupted one is redone from
# scratch, never used. Call it as a plain command: bash ignores `set -e` inside `$(...)` and on
# the left of `||`, so installers also check their own steps (`|| return`) and their result.
tool_install() {
    local dir=$1 installer=$2
    [ -e "$dir/.installed" ] && return 0
    mkdir -p "$(dirname "$dir")"
    (
        flock 9
        if [ ! -e "$dir/.installed" ]; then
            rm -rf "$dir"
            mkdir -p "$dir"
            "$installer" "$dir" || exit
            touch "$dir/.installed"
        fi
    ) 9>"$dir.lock"
}

# cargo_tool CRATE VERSION: installs the cargo subcommand CRATE@VERSION (locked) into
# $SESAME_TOOLS/CRATE-VERSION and puts its bin/ first on PATH.
cargo_tool() {
    local crate=$1 version=$2
    tool_install "$SESAME_TOOLS/$crate-$version" _install_cargo_tool
    PATH="$SESAME_TOOLS/$crate-$version/bin:$PATH"
    export PATH
}
_install_cargo_tool() { # DIR; crate and version are cargo_tool's (bash scopes locals dynamically)
    echo "tools: installing $crate $version into $1 (once per machine)" >&2
    local start=$SECONDS
    cargo install --quiet --locked --root "$1" "$crate@$version" || return
    echo "tools: installed $crate $version in $((SECONDS - start)) s" >&2
}
