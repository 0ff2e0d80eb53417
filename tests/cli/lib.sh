# lib.sh -- helpers shared by the CLI tests; sourced after TOOL is set:
#   TOOL=$SDL_BUILD_DIR/tools/sdl-x; . "$SDL_SOURCE_DIR/tests/cli/lib.sh"
# Gives WORK (a scratch directory removed on exit), `failures`, fail MESSAGE, and
# expect_exit CODE OUTPUT DESCRIPTION -- COMMAND...: the command exits CODE, prints
# exactly one "tool: ..." error line (plus the --help hint for usage errors), and leaves
# neither OUTPUT (unless "-") nor a temporary file behind; and
# expect_interrupt_cleans OUTPUT DELAY -- COMMAND...: the command, interrupted with
# SIGINT after DELAY seconds, exits non-zero saying 'interrupted' and leaves neither
# OUTPUT nor its temporary (.OUTPUT*) behind.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failures=0
TOOL_NAME=$(basename "$TOOL")

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

expect_exit() {
    code=$1 output=$2 what=$3
    shift 4
    "$@" >"$WORK/stdout" 2>"$WORK/stderr"
    rc=$?
    [ "$rc" -eq "$code" ] || fail "$what: exit $rc, expected $code ($(cat "$WORK/stderr"))"
    lines=$(grep -c "^$TOOL_NAME: " "$WORK/stderr")
    [ "$lines" -eq 1 ] || fail "$what: $lines error lines: $(cat "$WORK/stderr")"
    if [ "$code" -eq 2 ]; then
        grep -q "Try '$TOOL_NAME --help'" "$WORK/stderr" || fail "$what: no --help hint"
    fi
    [ "$output" = - ] || [ ! -e "$output" ] || fail "$what: left $output behind"
    if find "$WORK" -name '*.tmp*' | grep -q .; then
        fail "$what: left a temporary file"
    fi
}

expect_interrupt_cleans() {
    output=$1 delay=$2
    shift 3
    "$@" 2>"$WORK/int.err" &
    pid=$!
    sleep "$delay"
    kill -INT "$pid"
    wait "$pid"
    rc=$?
    [ "$rc" -ne 0 ] || fail "interrupted run exited 0"
    [ ! -e "$output" ] || fail "interrupted run left its output"
    find "$(dirname "$output")" -maxdepth 1 -name ".$(basename "$output")*" | grep -q . &&
        fail "interrupted run left a temporary"
    grep -q 'interrupted' "$WORK/int.err" || fail "no 'interrupted' message: $(cat "$WORK/int.err")"
}
