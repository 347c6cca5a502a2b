# Sourced by scripts/test: a run made of named steps, each one's wall time printed when it ends,
# steps that run in the background while others go on, and one closing line - the test count, the
# total time and the slowest steps - however the run ends.
#
#   step NAME DESCRIPTION            ends the step before, starts NAME
#   background NAME DESCRIPTION CMD  starts CMD (a program, not a shell function: bash ignores
#                                    `set -e` in a function whose status is tested) in the
#                                    background, at low CPU priority, its output kept for `join`
#   join NAME                        waits for NAME, prints its output and time; a failure ends the run
#   $STEPS_LOG                       append test output here; the closing line counts its results
STEPS_DIR=$(mktemp -d)
STEPS_LOG=$STEPS_DIR/tests.log
touch "$STEPS_LOG"
declare -A _steps_pids=()
_steps_start=$SECONDS _step_name= _step_start=0

_end_step() {
    [ -n "$_step_name" ] || return 0
    local took=$((SECONDS - _step_start))
    printf '%d\t%s\n' "$took" "$_step_name" >>"$STEPS_DIR/timings"
    printf -- '-- %s: %d s\n' "$_step_name" "$took" >&2
    _step_name=
}

step() { # NAME DESCRIPTION
    _end_step
    _step_name=$1 _step_start=$SECONDS
    printf '\n== %s: %s\n' "$1" "$2" >&2
}

background() { # NAME DESCRIPTION COMMAND...
    local name=$1 description=$2
    shift 2
    printf '\n== %s (in the background): %s\n' "$name" "$description" >&2
    (
        start=$SECONDS status=0
        # nice: the steps in the foreground come first; this one takes the CPU they leave idle.
        # setsid: its own process group, so that an early end can stop all of it.
        setsid nice -n 10 "$@" >"$STEPS_DIR/$name.out" 2>&1 &
        echo $! >"$STEPS_DIR/$name.pgid"
        wait $! || status=$?
        printf '%d\t%s\n' $((SECONDS - start)) "$name" >>"$STEPS_DIR/timings"
        printf '%d\n' $((SECONDS - start)) >"$STEPS_DIR/$name.took"
        exit "$status"
    ) &
    _steps_pids[$name]=$!
}

join() { # NAME
    local name=$1 status=0 start=$SECONDS
    wait "${_steps_pids[$name]}" || status=$?
    unset "_steps_pids[$name]"
    printf '\n== %s (from the background)\n' "$name" >&2
    cat "$STEPS_DIR/$name.out" >&2
    printf -- '-- %s: %d s in the background, %d s waited for\n' "$name" \
        "$(cat "$STEPS_DIR/$name.took" 2>/dev/null || echo '?')" $((SECONDS - start)) >&2
    if [ "$status" != 0 ]; then
        echo "$name FAILED (exit $status)" >&2
        exit "$status"
    fi
}

_closing() {
    local status=$? total=$((SECONDS - _steps_start)) name
    _end_step
    # A run that ends early takes its background steps with it.
    for name in "${!_steps_pids[@]}"; do
        kill -- "-$(cat "$STEPS_DIR/$name.pgid" 2>/dev/null)" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    # cargo's last line is only its last test binary's: one count for the whole run.
    awk '/^test result:/ { p += $4; f += $6 } END { printf "summary: %d passed, %d failed\n", p, f }' "$STEPS_LOG"
    printf 'ci: %s in %d s (%dm%02ds); slowest: %s\n' \
        "$([ "$status" = 0 ] && echo passed || echo "FAILED (exit $status)")" \
        "$total" $((total / 60)) $((total % 60)) \
        "$(sort -rn "$STEPS_DIR/timings" 2>/dev/null | head -n 5 |
            awk -F '\t' '{ printf "%s%s %d s", (NR > 1 ? ", " : ""), $2, $1 }')"
    rm -rf "$STEPS_DIR"
}
trap _closing EXIT
