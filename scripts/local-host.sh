# Sourced by scripts/demo and bench/run: a sesame host and client on 127.0.0.1 in a directory.
#   local_host_start BIN_DIR WORK_DIR   builds config, keys, enrols client "alice" (groups given by
#                                       $LOCAL_GROUP, comma-separated, default users), starts
#                                       sesamed, pins host "demo"
# Exports SESAMED_CONFIG, SESAME_HOME and LOCAL_HOST_PID; echoes the commands it runs when
# LOCAL_HOST_VERBOSE=1. With LOCAL_SQS_ENDPOINT set (a local SQS server, credentials in the
# environment), the host also polls the queue sesame-req-demo there, and "demo" gets that route.
# $LOCAL_HOST_CONFIG, if set, is appended to sesamed.toml (bench/run raises [limits] with it);
# $LOCAL_POLICY_DATA, if set, names a data.json used instead of the stock one.
local_host_say() { [ "${LOCAL_HOST_VERBOSE:-0}" = 1 ] && printf '\n\033[1m$ %s\033[0m\n' "$*" >&2 || true; }

local_host_start() {
    local bin=$1 work=$2 repo mods addr host_key cert
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    mods="$repo/commands/target/wasm32-wasip2/release"
    mkdir -p "$work/host"
    cp -r "$repo/policies" "$work/host/policies"
    [ -n "${LOCAL_POLICY_DATA:-}" ] && cp "$LOCAL_POLICY_DATA" "$work/host/policies/data.json"
    cat > "$work/host/sesamed.toml" <<TOML
[host]
name = "demo"
state_dir = "state"
policies = "policies"

[quic]
listen = "127.0.0.1:0"

[clusters.basic.commands]
echo = "$mods/echo.wasm"
whoami = "$mods/whoami.wasm"

[clusters.testing.commands]
spin = "$mods/spin.wasm"

[clusters.access]
capabilities = ["firewall"]
[clusters.access.commands]
allow = "$mods/allow.wasm"
revoke = "$mods/revoke.wasm"
grants = "$mods/grants.wasm"

# The demo records openings in state/firewall-dry-run.jsonl instead of changing this machine's
# firewall; a real host uses "ufw" (the default) or "nftables".
[firewall]
backend = "dry-run"
TOML
    if [ -n "${LOCAL_SQS_ENDPOINT:-}" ]; then
        printf '\n[sqs]\nqueue = "sesame-req-demo"\nregion = "us-east-1"\nendpoint_url = "%s"\n' \
            "$LOCAL_SQS_ENDPOINT" >> "$work/host/sesamed.toml"
    fi
    [ -n "${LOCAL_HOST_CONFIG:-}" ] && printf '\n%s\n' "$LOCAL_HOST_CONFIG" >> "$work/host/sesamed.toml"
    export SESAMED_CONFIG="$work/host/sesamed.toml" SESAME_HOME="$work/client"

    local_host_say "sesamed init $work/host/state"
    "$bin/sesamed" init "$work/host/state" >&2
    local_host_say "sesame keygen"
    "$bin/sesame" keygen >&2
    local groups=() group
    IFS=, read -ra groups <<<"${LOCAL_GROUP:-users}"
    local group_args=()
    for group in "${groups[@]}"; do group_args+=(--group "$group"); done
    local_host_say "sesamed client add alice --key \$(sesame key show) ${group_args[*]}"
    "$bin/sesamed" client add alice --key "$("$bin/sesame" key show)" "${group_args[@]}" >&2

    local_host_say "sesamed serve &"
    "$bin/sesamed" serve > "$work/serve.out" 2> "$work/daemon.log" &
    LOCAL_HOST_PID=$!
    export LOCAL_HOST_PID
    for _ in $(seq 300); do grep -q '^listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
    addr=$(sed -n 's/^listening on //p' "$work/serve.out")
    [ -n "$addr" ] || { cat "$work/daemon.log" >&2; return 1; }
    host_key=$("$bin/sesamed" show | sed -n 's/^host key: *//p')
    cert=$("$bin/sesamed" show | sed -n 's/^cert sha256: *//p')
    local_host_say "sesame host add demo --addr $addr --key ${host_key:0:16}… --cert-sha256 ${cert:0:16}…"
    local sqs=()
    [ -n "${LOCAL_SQS_ENDPOINT:-}" ] &&
        sqs=(--sqs-queue sesame-req-demo --sqs-region us-east-1 --sqs-endpoint "$LOCAL_SQS_ENDPOINT")
    "$bin/sesame" host add demo --addr "$addr" --key "$host_key" --cert-sha256 "$cert" "${sqs[@]}" >&2
}
