#!/bin/sh
# sdl-bench: --quick io runs and prints every figure with a named baseline and a ratio,
# as a table and as JSON; --list names the families; usage errors exit 2. No timing is
# asserted: only that the numbers exist and are positive.
set -u
bench="$SDL_BUILD_DIR/tools/sdl-bench"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$bench" --list >"$tmp/list" || bad "--list failed"
grep -q "^io " "$tmp/list" || bad "--list does not name io: $(cat "$tmp/list")"

"$bench" --quick --tmpdir "$tmp" --data "$SDL_TESTDATA" io >"$tmp/table" 2>"$tmp/log"; rc=$?
[ $rc -eq 0 ] || bad "--quick io exits $rc: $(cat "$tmp/log")"
cat "$tmp/table"
grep -q "^# cpu: .*cores; threads: [0-9]" "$tmp/table" || bad "no machine line in the header"
grep -q "^# sdl-bench .*[0-9]T[0-9]" "$tmp/table" || bad "no program/date line in the header"
grep -q "^group  *name  *rate  *baseline  *baseline rate  *speedup  *reps" "$tmp/table" ||
    bad "no column header"
rows=$(grep -c "^io " "$tmp/table")
[ "$rows" -ge 5 ] || bad "want at least 5 io figures (npy read/write, safetensors, stream, PNG), got $rows"
for what in "npy read" "npy write" "safetensors load" "tensor stream read" "PNG decode"; do
    grep -q "^io  *$what" "$tmp/table" || bad "no '$what' figure"
done
# every figure: a rate, a baseline name, its rate, a positive ratio "N.NNx" and the reps
grep "^io " "$tmp/table" | while IFS= read -r row; do
    echo "$row" | grep -Eq "[0-9.]+ (MB|Mpx)/s  +[A-Za-z].*[0-9.]+ (MB|Mpx)/s +[0-9]+\.[0-9][0-9]x +3$" ||
        { echo "FAIL: malformed row: $row"; exit 1; }
done || fail=1
grep -q "^\[1\] " "$tmp/table" || bad "no footnotes saying how figures were measured"
[ -z "$(ls "$tmp" | grep sdl-bench)" ] || bad "scratch directory left behind"

"$bench" --quick --json -q --reps 2 --tmpdir "$tmp" --data "$SDL_TESTDATA" -o "$tmp/report.json" io \
    2>"$tmp/log"; rc=$?
[ $rc -eq 0 ] || bad "--json exits $rc: $(cat "$tmp/log")"
[ ! -s "$tmp/log" ] || bad "-q still printed: $(cat "$tmp/log")"
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 - "$tmp/report.json" <<'PY' || fail=1
import json, sys
doc = json.load(open(sys.argv[1]))
problems = []
for key in ("program", "date", "host", "threads", "results"):
    if key not in doc:
        problems.append("missing key " + key)
if not doc["host"].get("cpu") or doc["host"].get("cores", 0) < 1:
    problems.append("host without cpu/cores")
if len(doc["results"]) < 5:
    problems.append("only %d results" % len(doc["results"]))
for r in doc["results"]:
    if r["group"] != "io" or not r["baseline"] or r["reps"] != 2:
        problems.append("bad result %r" % r)
    for key in ("speedup", "subject_rate", "baseline_rate", "subject_median_s", "baseline_median_s"):
        if not isinstance(r[key], (int, float)) or r[key] <= 0:
            problems.append("%s: %s = %r" % (r["name"], key, r[key]))
    if abs(r["speedup"] - r["baseline_median_s"] / r["subject_median_s"]) > 1e-3 * r["speedup"]:
        problems.append("%s: speedup is not the ratio of medians" % r["name"])
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
elif command -v jq >/dev/null 2>&1; then
    jq -e '.results | length >= 5 and all(.[]; .baseline != "" and .speedup > 0)' \
        "$tmp/report.json" >/dev/null || bad "JSON report incomplete"
else
    grep -q '"speedup"' "$tmp/report.json" || bad "JSON report without speedup"
fi

# qmatmul: every width and the int8 route against sgemm, each row naming its route; the
# quantizer against memcpy. The family checks its results itself (exit 1 on a mismatch).
"$bench" --quick --tmpdir "$tmp" qmatmul >"$tmp/qtable" 2>"$tmp/qlog"; rc=$?
[ $rc -eq 0 ] || bad "--quick qmatmul exits $rc: $(cat "$tmp/qlog")"
for w in w1a1 w1a2 w2a2 w4a4 w8a8 "int8 s8xs8"; do
    grep -Eq "^qmatmul  *$w 512\^3 \((bitserial|int8), (avx2|scalar)\) \[[0-9]+\] +[0-9.]+ GOPS  +OpenBLAS sgemm +[0-9.]+ GOPS +[0-9]+\.[0-9][0-9]x +3$" \
        "$tmp/qtable" || bad "no well-formed qmatmul $w row"
done
grep -q "^qmatmul  *int8 s8xs8 512^3 (int8," "$tmp/qtable" || bad "forced int8 route not taken"
grep -Eq "^qmatmul  *quantize 16 MiB f32, 4-bit, group 128 \[[0-9]+\] +[0-9.]+ GB/s  +memcpy of the same bytes +[0-9.]+ GB/s" \
    "$tmp/qtable" || bad "no quantize row"
[ "$(grep -c "64 spot checks exact" "$tmp/qtable")" -eq 6 ] || bad "GEMM rows without their checks"

# wm: quality, one row per attack, false positives and detection throughput, each row
# with its counts in the name and a baseline; detections are counted by the family.
"$bench" --quick --reps 2 --tmpdir "$tmp" --data "$SDL_TESTDATA" wm >"$tmp/wtable" 2>"$tmp/wlog"; rc=$?
[ $rc -eq 0 ] || bad "--quick wm exits $rc: $(cat "$tmp/wlog")"
cat "$tmp/wtable"
grep -Eq "^wm  *embed [0-9]+ photos: PSNR [0-9.]+ mean [0-9.]+ min dB, SSIM 0?\.[0-9]+ mean 0?\.[0-9]+ min \[[0-9]+\] +[0-9.]+ img/s  +PNG decode of the same photos +[0-9.]+ img/s +[0-9]+\.[0-9][0-9]x +2$" \
    "$tmp/wtable" || bad "no well-formed wm embed row"
[ "$(grep -c "^wm  *attack " "$tmp/wtable")" -eq 12 ] || bad "want 12 wm attack rows"
grep "^wm  *attack " "$tmp/wtable" | while IFS= read -r row; do
    echo "$row" | grep -Eq ": det [0-9]+/[1-9][0-9]* [01]\.[0-9]{3}, bits [01]\.[0-9]{4} \[[0-9]+\] +[0-9.]+ img/s  +same attack, unmarked photos +[0-9.]+ img/s +[0-9]+\.[0-9][0-9]x +1$" ||
        { echo "FAIL: malformed wm row: $row"; exit 1; }
done || fail=1
grep -Eq "^wm  *false pos: [0-9]+/300, rate [0-9.e+-]+ vs 1e-6; p<\.01/\.1/\.5: [01]\.[0-9]{3}/[01]\.[0-9]{3}/[01]\.[0-9]{3}, KS [01]\.[0-9]{3} \[[0-9]+\] +[0-9.]+ img/s  +same crops marked, right key" \
    "$tmp/wtable" || bad "no well-formed wm false-positive row"
for size in 512x512 1920x1080; do
    for base in "sequential detector, 1 thread" "fixed pipeline, 1 thread per stage \(4\)"; do
        grep -Eq "^wm  *detect $size JPEG q90, adaptive, [0-9]+ thr \[[0-9]+\] +[0-9.]+ img/s  +$base +[0-9.]+ img/s +[0-9]+\.[0-9][0-9]x +2$" \
            "$tmp/wtable" || bad "no wm detect $size row against '$base'"
    done
done
grep -q "invisible-watermark" "$tmp/wlog" || bad "wm does not say what became of the invisible-watermark baseline"
[ -z "$(ls "$tmp" | grep sdl-bench)" ] || bad "wm left its scratch directory behind"

# supergen: every row names its baseline; the notes carry the quality figures
"$bench" --quick --reps 1 --tmpdir "$tmp" --data "$SDL_TESTDATA" supergen >"$tmp/stable" 2>"$tmp/slog"; rc=$?
[ $rc -eq 0 ] || bad "--quick supergen exits $rc: $(cat "$tmp/slog")"
cat "$tmp/stable"
for base in "cache off, 1 worker" "cache, 1 worker" "2 workers static blocks" "no cache, 1 worker" "bicubic x2"; do
    grep -Eq "^supergen .*\] +[0-9.]+ frame/s  +$base +[0-9.]+ frame/s +[0-9]+\.[0-9][0-9]x +1$" \
        "$tmp/stable" || bad "no supergen row against '$base'"
done
grep -Eq "skipped [0-9.]+ % of [0-9]+ tile evals .* vs uncached: PSNR [0-9.]+ dB .* seam [0-9.]+" "$tmp/stable" ||
    bad "supergen cache note lacks skip, PSNR or seam figures"
grep -Eq "supergen PSNR [0-9.]+ dB SSIM 0\.[0-9]+, bicubic PSNR [0-9.]+ dB" "$tmp/stable" ||
    bad "supergen restore note lacks PSNR figures"
[ -z "$(ls "$tmp" | grep sdl-bench)" ] || bad "supergen left its scratch directory behind"

# serve: goodput, live vs sim, tiled vs untiled quality and the region cache, each row
# against its named baseline; the attainment plot lands in $SDL_BENCH_OUT
SDL_BENCH_OUT="$tmp" "$bench" --quick --reps 1 --tmpdir "$tmp" --data "$SDL_TESTDATA" serve \
    >"$tmp/vtable" 2>"$tmp/vlog"; rc=$?
[ $rc -eq 0 ] || bad "--quick serve exits $rc: $(cat "$tmp/vlog")"
cat "$tmp/vtable"
for base in "grouped \(sim, same trace\)" "grouped \(sim\)" "same trace simulated" \
            "untiled generation" "tiled, cache off"; do
    grep -Eq "^serve .*\] +[0-9.]+ [a-zA-Z/]+  +$base +[0-9.]+ [a-zA-Z/]+ +[0-9]+\.[0-9][0-9]x +[0-9]+$" \
        "$tmp/vtable" || bad "no serve row against '$base'"
done
grep -Eq "goodput SLO 3x: tile [0-9.e-]+ req/s = [0-9.]+x grouped" "$tmp/vtable" || bad "no serve goodput ratio"
grep -Eq "seam [0-9.]+ \(untiled [0-9.]+\) mean [-+][0-9.]+% var [-+][0-9.]+% spec [0-9.]+%" "$tmp/vtable" ||
    bad "serve quality row lacks seam, mean, variance or spectrum figures"
grep -Eq "cache tau [0-9.]+ [0-9]+\^2: [0-9]+% skipped" "$tmp/vtable" || bad "serve cache row lacks its skip fraction"
grep -q "<svg" "$tmp/serve-attainment.svg" 2>/dev/null || bad "serve wrote no attainment plot"
[ -z "$(ls "$tmp" | grep sdl-bench)" ] || bad "serve left its scratch directory behind"

"$bench" --quick no-such-family >/dev/null 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] || bad "unknown family exits $rc (want 2)"
grep -q "no-such-family" "$tmp/err" || bad "unknown family not named: $(cat "$tmp/err")"
"$bench" --reps 0 io >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || bad "--reps 0 exits $rc (want 2)"
"$bench" --quick --tmpdir "$tmp/missing-dir" io >/dev/null 2>&1; rc=$?
[ $rc -eq 2 ] || bad "--tmpdir of a missing directory exits $rc (want 2)"

[ $fail -eq 0 ] && echo "sdl-bench: all checks passed"
exit $fail
