#!/bin/sh
# The conventions every sdl-* tool promises (tools/common/cli.h): --help and --version
# exit 0 and say something useful on stdout; an unknown option is a usage error
# (exit 2) with a hint; a missing input file is exit 1 with one line naming the file;
# a man page exists for the tool.
set -u
tools="$SDL_BUILD_DIR/tools"
src="$SDL_SOURCE_DIR"
fail=0
checked=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT

bad() { echo "FAIL: $*"; fail=1; }

for tool in "$tools"/sdl-*; do
    [ -x "$tool" ] && [ -f "$tool" ] || continue
    name=$(basename "$tool")
    checked=$((checked + 1))

    out=$("$tool" --help 2>"$err"); rc=$?
    [ $rc -eq 0 ] || bad "$name --help exits $rc"
    echo "$out" | grep -q "Usage: $name" || bad "$name --help does not start a 'Usage: $name' line"
    [ ! -s "$err" ] || bad "$name --help wrote to stderr"

    out=$("$tool" --version 2>&1); rc=$?
    [ $rc -eq 0 ] || bad "$name --version exits $rc"
    echo "$out" | grep -q "^$name (sdl) [0-9]" || bad "$name --version prints '$out'"

    "$tool" --no-such-option >/dev/null 2>"$err"; rc=$?
    [ $rc -eq 2 ] || bad "$name --no-such-option exits $rc (want 2)"
    grep -q -- "--help" "$err" || bad "$name: usage error without a --help hint"

    "$tool" --threads zero >/dev/null 2>"$err"; rc=$?
    [ $rc -eq 2 ] || bad "$name --threads zero exits $rc (want 2)"

    [ -f "$src/man/$name.1" ] || bad "$name has no man page man/$name.1"
done

# A missing input: every tool that takes files names it and exits 1.
missing=/nonexistent/dir/input.png
for cmd in "sdl-info $missing" "sdl-tile split -o /dev/null $missing" "sdl-tile merge -o /tmp/x.png $missing"; do
    set -- $cmd
    name=$1; shift
    [ -x "$tools/$name" ] || continue
    "$tools/$name" "$@" >/dev/null 2>"$err"; rc=$?
    [ $rc -eq 1 ] || bad "'$cmd' exits $rc (want 1)"
    grep -q "$missing" "$err" || bad "'$cmd' does not name the file: $(cat "$err")"
    [ "$(wc -l <"$err")" -eq 1 ] || bad "'$cmd' printed more than one line: $(cat "$err")"
done

[ $checked -ge 3 ] || bad "only $checked tools found in $tools"
[ $fail -eq 0 ] && echo "conventions hold for $checked tools"
exit $fail
