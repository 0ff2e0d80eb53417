#!/bin/sh
# sdl-graphgen, sdl-gnn-condense and sdl-spmm on real graphs: values are checked, not just
# exit codes.
#   graphgen: same options -> same bytes for any thread count; F*N edges; --symmetric
#     gives a symmetric matrix without duplicates; .mtx.gz reads back (SciPy mmread).
#   condense --stats on karate: every column recomputed here in plain Python from the
#     Matrix Market text (no sdl code); JSON agrees with the table.
#   the condensed file: round trip (stats of the file = stats of the graph), sdl-info
#     sees the documented tensors and metadata, corrupted copies are refused, exit 1.
#   SciPy .npz (scipy.sparse.save_npz, 'format' a NumPy string) reads; sdl-spmm's Y
#     matches SciPy/NumPy A @ X to 1e-5 relative (CSR and condensed kernels, reordered
#     files, D not a multiple of 8).
#   every bad input of the issue: clear message naming the file (and line), exit 1,
#   no output file left.
set -u
tools="$SDL_BUILD_DIR/tools"
data="$SDL_TESTDATA/graphs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
py=/usr/bin/python3
have_py=0; [ -x $py ] && have_py=1
have_np=0; [ $have_py = 1 ] && $py -c 'import numpy' 2>/dev/null && have_np=1
have_sp=0; [ $have_np = 1 ] && $py -c 'import scipy.sparse, scipy.io' 2>/dev/null && have_sp=1
[ $have_sp = 1 ] || echo "note: NumPy/SciPy absent for /usr/bin/python3: their cross-checks are skipped"
gen="$tools/sdl-graphgen" cond="$tools/sdl-gnn-condense" spmm="$tools/sdl-spmm"
karate="$data/karate.mtx.gz"

# expect_fail WHAT TEXT CMD...: exit 1, message contains TEXT, one line
expect_fail() {
    what=$1; text=$2; shift 2
    "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"; rc=$?
    [ $rc -eq 1 ] || bad "$what: exit $rc (want 1): $(cat "$tmp/err.txt")"
    grep -q -- "$text" "$tmp/err.txt" || bad "$what: message lacks '$text': $(cat "$tmp/err.txt")"
}

# ---- sdl-graphgen ---------------------------------------------------------------------
"$gen" -q --scale 12 --edge-factor 8 --seed 7 --threads 1 -o "$tmp/a.mtx" || bad "graphgen failed"
"$gen" -q --scale 12 --edge-factor 8 --seed 7 --threads 2 -o "$tmp/b.mtx" || bad "graphgen failed"
cmp -s "$tmp/a.mtx" "$tmp/b.mtx" || bad "graphgen: output depends on the thread count"
"$gen" -q --scale 12 --edge-factor 8 --seed 8 -o "$tmp/c.mtx"
cmp -s "$tmp/a.mtx" "$tmp/c.mtx" && bad "graphgen: another seed gives the same graph"
size=$(grep -v '^%' "$tmp/a.mtx" | head -1)
[ "$size" = "4096 4096 32768" ] || bad "graphgen size line '$size' (want 4096 4096 32768)"
lines=$(grep -vc '^%' "$tmp/a.mtx")
[ "$lines" -eq 32769 ] || bad "graphgen wrote $lines lines (want 32768 edges + size line)"
awk '!/^%/ && NR > 3 { if ($1 < 1 || $1 > 4096 || $2 < 1 || $2 > 4096) { print "bad", $0; exit 1 } }' \
    "$tmp/a.mtx" || bad "graphgen: an index outside 1..4096"
"$gen" -q --nodes 1000 --edge-factor 4 -o "$tmp/n.mtx.gz" || bad "graphgen --nodes .mtx.gz failed"
[ "$(gzip -dc "$tmp/n.mtx.gz" | grep -v '^%' | head -1)" = "1000 1000 4000" ] || bad "graphgen --nodes 1000 size line"
"$gen" -q --scale 10 --symmetric -o "$tmp/s.mtx" || bad "graphgen --symmetric failed"
# symmetric: every (i,j) has its (j,i), no duplicates
awk '!/^%/ { if (!seen++) next; k = $1 " " $2; if (k in e) dup++; e[k] = 1 }
     END { for (k in e) { split(k, p, " "); if (!((p[2] " " p[1]) in e)) asym++ }
           exit (dup + asym) > 0 }' "$tmp/s.mtx" || bad "graphgen --symmetric is not symmetric or has duplicates"
"$gen" -q --scale 4 -o "$tmp/x.npz" 2>"$tmp/err.txt"; rc=$?
[ $rc -eq 2 ] || bad "graphgen -o x.npz exits $rc (want 2: unsupported output)"
"$gen" --scale 4 --nodes 5 -o "$tmp/x.mtx" 2>/dev/null; [ $? -eq 2 ] || bad "graphgen --scale with --nodes is not a usage error"
if [ $have_sp = 1 ]; then
    $py - "$tmp" <<'PY' || bad "SciPy reads graphgen's files differently"
import sys, scipy.io, numpy as np
d = sys.argv[1]
a = scipy.io.mmread(d + '/n.mtx.gz').tocsr()
assert a.shape == (1000, 1000) and a.nnz <= 4000 and a.sum() == 4000, (a.shape, a.nnz, a.sum())
s = scipy.io.mmread(d + '/s.mtx').tocsr()
assert (s != s.T).nnz == 0 and s.max() == 1
PY
fi

# ---- condense --stats on karate, recomputed by hand ------------------------------------
"$cond" --stats "$karate" >"$tmp/stats.txt" 2>/dev/null || bad "--stats karate failed"
"$cond" --stats --json "$karate" >"$tmp/stats.json" 2>/dev/null || bad "--stats --json karate failed"
if [ $have_py = 1 ]; then
    $py - "$karate" "$tmp/stats.json" "$tmp/stats.txt" <<'PY' || bad "karate --stats differs from the hand computation"
import gzip, json, sys
# karate: symmetric pattern, 78 stored entries -> 156 edges; H=16, W=8
lines = [l.split() for l in gzip.open(sys.argv[1], 'rt') if not l.startswith('%')]
n = int(lines[0][0]); edges = set()
for i, j in ((int(a) - 1, int(b) - 1) for a, b in lines[1:]):
    edges.add((i, j)); edges.add((j, i))
H, W = 16, 8
naive = len({(i // H, j // W) for i, j in edges})
cols = {}
for i, j in edges:
    cols.setdefault(i // H, set()).add(j)
sgt = sum((len(c) + W - 1) // W for c in cols.values())
want = dict(nodes=n, edges=len(edges), dense_gb=n * n * 4 / 1e9, naive_tiles=naive, sgt_tiles=sgt,
            naive_useful=len(edges) / (naive * H * W), sgt_useful=len(edges) / (sgt * H * W),
            tile_reduction=1 - sgt / naive)
assert (n, len(edges), naive, sgt) == (34, 156, 15, 8), (n, len(edges), naive, sgt)
got = json.load(open(sys.argv[2]))
for k, v in want.items():
    assert abs(got[k] - v) <= 1e-5 * abs(v), (k, got[k], v)
row = [l.split() for l in open(sys.argv[3]) if l.startswith('karate')][0]
# graph nodes edges denseGB useful% useful% naive sgt cut% ms
assert row[1:3] == ['34', '156'] and row[6:8] == ['15', '8'], row
assert row[4] == '%.3f%%' % (100 * want['naive_useful']) and row[5] == '%.3f%%' % (100 * want['sgt_useful']), row
assert row[8] == '%.1f%%' % (100 * want['tile_reduction']), row
PY
fi
# several graphs in one table, one JSON line each
"$cond" -q --stats --json "$data"/*.mtx.gz >"$tmp/all.json" || bad "--stats over all test graphs failed"
[ "$(wc -l <"$tmp/all.json")" -eq "$(ls "$data"/*.mtx.gz | wc -l)" ] || bad "--stats --json: one line per graph"

# ---- --reorder rcm against SciPy's reverse_cuthill_mckee --------------------------------
# the tile count SGT gets after our RCM is no worse than after SciPy's (ties and start
# nodes may differ: 5 % slack), and clearly below the unordered count
for g in power polblogs; do
    "$cond" -q --stats --json --reorder rcm "$data/$g.mtx.gz" >"$tmp/rcm.json" || bad "--reorder rcm $g failed"
    "$cond" -q --stats --json "$data/$g.mtx.gz" >"$tmp/plain.json" || bad "--stats $g failed"
    if [ $have_sp = 1 ]; then
        $py - "$data/$g.mtx.gz" "$tmp/rcm.json" "$tmp/plain.json" <<'PY' || bad "$g: --reorder rcm makes more tiles than SciPy's RCM"
import gzip, json, sys, numpy as np, scipy.io
from scipy.sparse.csgraph import reverse_cuthill_mckee
# (a symmetric file's mirrors are read too, as sdl does; repeated entries, which sdl
# keeps, are merged here: they do not change a window's columns)
a = scipy.io.mmread(gzip.open(sys.argv[1])).tocsr()
p = reverse_cuthill_mckee(((a + a.T) != 0).tocsr(), symmetric_mode=True)
b = a[p][:, p].tocsr()
H, W = 16, 8
tiles = 0
for w in range(0, b.shape[0], H):
    cols = np.unique(b.indices[b.indptr[w]:b.indptr[min(w + H, b.shape[0])]])
    tiles += (len(cols) + W - 1) // W
ours, plain = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
assert ours['sgt_tiles'] <= 1.05 * tiles, ('ours', ours['sgt_tiles'], 'scipy', tiles)
assert ours['sgt_tiles'] < 0.9 * plain['sgt_tiles'], ('rcm', ours['sgt_tiles'], 'none', plain['sgt_tiles'])
print('%s: RCM tiles %d (SciPy RCM %d, unordered %d)' % (sys.argv[1].split('/')[-1], ours['sgt_tiles'], tiles, plain['sgt_tiles']))
PY
    fi
done
"$cond" -q --reorder rcm -o "$tmp/r.safetensors" "$karate" || bad "condense --reorder rcm -o failed"
grep -a -q '"sdl.sgt.permutation":"rcm"' "$tmp/r.safetensors" || bad "the file does not record the rcm permutation"

# ---- the condensed file: round trip, layout, corruption ---------------------------------
"$cond" -q --gcn-norm --reorder degree -o "$tmp/k.safetensors" "$karate" || bad "condense -o failed"
"$cond" -q --stats --json --gcn-norm --reorder degree "$karate" >"$tmp/direct.json"
"$cond" -q --stats --json "$tmp/k.safetensors" >"$tmp/file.json" || bad "--stats of a condensed file failed"
strip() { sed 's/"graph": "[^"]*", //; s/, "sgt_seconds.*//' "$1"; }
[ "$(strip "$tmp/direct.json")" = "$(strip "$tmp/file.json")" ] || bad "stats differ after the round trip: $(cat "$tmp/direct.json") vs $(cat "$tmp/file.json")"
"$tools/sdl-info" "$tmp/k.safetensors" >"$tmp/info.txt" || bad "sdl-info cannot read the condensed file"
for t in row_ptr col_idx values window_col_ptr window_cols window_tile_ptr tile_nz_ptr \
         column_nz_ptr tile_nz_row tile_nz_col tile_nz_value tile_nz_edge edge_condensed_col perm; do
    grep -q "^  $t " "$tmp/info.txt" || bad "condensed file lacks tensor $t"
done
grep -q "sdl.format = sgt-condensed-graph" "$tmp/info.txt" || bad "condensed file lacks sdl.format"
grep -q "sdl.sgt.prepared = gcn-norm" "$tmp/info.txt" || bad "condensed file lacks sdl.sgt.prepared"
grep -q "sdl.sgt.permutation = degree" "$tmp/info.txt" || bad "condensed file lacks the permutation"
if [ $have_np = 1 ]; then
    # corrupt one array at a time (rewritten with the same metadata by NumPy-free byte
    # surgery is brittle: use a tiny safetensors rewriter in Python)
    for case in edge_condensed_col tile_nz_row window_cols perm meta_tiles drop_tile_nz_edge row_ptr; do
        $py - "$tmp/k.safetensors" "$tmp/bad-$case.safetensors" "$case" <<'PY'
import json, struct, sys
src, dst, case = sys.argv[1:]
b = open(src, 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
hdr = json.loads(b[8:8 + n]); data = bytearray(b[8 + n:])
def arr(name):
    return hdr[name]['data_offsets']
if case == 'meta_tiles':
    hdr['__metadata__']['sdl.sgt.tiles'] = str(int(hdr['__metadata__']['sdl.sgt.tiles']) + 1)
elif case == 'drop_tile_nz_edge':
    del hdr['tile_nz_edge']   # leaves a gap: also a safetensors error, either way refused
else:
    a, e = arr(case)
    if case == 'tile_nz_row': data[a] = 200           # a row outside the window
    elif case == 'perm': data[a:a + 16] = data[a + 8:a + 16] + data[a + 8:a + 16]  # repeated entry
    elif case == 'row_ptr': data[a + 8] = 99           # non-monotone row pointer
    else: data[a] ^= 1                                 # condensed column / window column off by one
h = json.dumps(hdr).encode()
h += b' ' * (-len(h) % 8)
open(dst, 'wb').write(struct.pack('<Q', len(h)) + h + bytes(data))
PY
        expect_fail "corrupted condensed file ($case)" "bad-$case.safetensors" "$cond" --stats "$tmp/bad-$case.safetensors"
        grep '' "$tmp/err.txt" >>"$tmp/corrupt-messages.txt"
    done
fi
# truncated file
head -c 3000 "$tmp/k.safetensors" >"$tmp/trunc.safetensors"
expect_fail "truncated condensed file" "trunc.safetensors" "$cond" --stats "$tmp/trunc.safetensors"
# a safetensors file that is not a condensed graph
if [ $have_py = 1 ]; then
    $py -c 'import struct,sys; h=b"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}"; h+=b" "*(-len(h)%8); open(sys.argv[1],"wb").write(struct.pack("<Q",len(h))+h+b"x")' "$tmp/plain.safetensors"
    expect_fail "plain safetensors as a graph" "plain.safetensors: not a condensed graph" "$cond" --stats "$tmp/plain.safetensors"
fi

# ---- sdl-spmm against NumPy/SciPy ---------------------------------------------------------
if [ $have_sp = 1 ]; then
    $py - "$tmp" <<'PY'
import numpy as np
rng = np.random.default_rng(3)
for n, d in ((34, 13), (34, 1), (115, 64), (30, 5)):
    np.save('%s/x%d_%d.npy' % (__import__('sys').argv[1], n, d), rng.standard_normal((n, d)).astype(np.float32))
np.save(__import__('sys').argv[1] + '/x34.npy', rng.standard_normal((34, 16)).astype(np.float32))
np.save(__import__('sys').argv[1] + '/x34_f64.npy', rng.standard_normal((34, 3)))
PY
    # compare Y.npy GRAPH X.npy [gcn]: max |Y - A X| <= 1e-5 * max |A X| in float64
    compare() {
        $py - "$@" <<'PY'
import sys, numpy as np, scipy.io, scipy.sparse as sp
y, g, x = np.load(sys.argv[1]), sys.argv[2], np.load(sys.argv[3]).astype(np.float64)
A = (sp.load_npz(g) if g.endswith('.npz') else scipy.io.mmread(g)).tocsr().astype(np.float64)
if len(sys.argv) > 4:  # GCN normalisation D^-1/2 (A+I) D^-1/2, self-loops only where missing
    A = A.tolil(); A.setdiag([1.0 if A[i, i] == 0 else A[i, i] for i in range(A.shape[0])]); A = A.tocsr()
    dinv = 1 / np.sqrt(np.asarray(A.sum(1)).ravel()); A = sp.diags(dinv) @ A @ sp.diags(dinv)
want = A @ x
want = want.reshape(y.shape)
err = np.abs(y - want).max() / max(np.abs(want).max(), 1e-30)
assert y.dtype == np.float32 and err <= 1e-5, (y.dtype, err)
PY
    }
    for kernel in csr condensed; do
        for xd in 34_13 34_1; do
            "$spmm" -q --kernel $kernel -o "$tmp/y.npy" "$karate" "$tmp/x$xd.npy" || bad "spmm $kernel $xd failed"
            compare "$tmp/y.npy" "$karate" "$tmp/x$xd.npy" || bad "spmm $kernel karate D=${xd#34_} differs from SciPy"
        done
        "$spmm" -q --kernel $kernel --isa portable -o "$tmp/y.npy" "$data/football.mtx.gz" "$tmp/x115_64.npy" || bad "spmm portable failed"
        compare "$tmp/y.npy" "$data/football.mtx.gz" "$tmp/x115_64.npy" || bad "spmm $kernel portable football differs from SciPy"
        # the reordered, GCN-normalised condensed file: rows come back in the original order
        "$spmm" -q --kernel $kernel -o "$tmp/y.npy" "$tmp/k.safetensors" "$tmp/x34_13.npy" || bad "spmm on the condensed file failed"
        compare "$tmp/y.npy" "$karate" "$tmp/x34_13.npy" gcn || bad "spmm $kernel on the reordered condensed file differs from SciPy"
    done
    # --device: auto runs on the CPU where there is no GPU (same result); gpu is then an
    # error naming the GPU that leaves no output; a bad name is a usage error
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        "$spmm" -q --device auto -o "$tmp/y.npy" "$karate" "$tmp/x34_13.npy" || bad "spmm --device auto failed"
        compare "$tmp/y.npy" "$karate" "$tmp/x34_13.npy" || bad "spmm --device auto differs from SciPy"
        expect_fail "spmm --device gpu without a GPU" "GPU" "$spmm" -q --device gpu -o "$tmp/yg.npy" "$karate" "$tmp/x34_13.npy"
        [ ! -e "$tmp/yg.npy" ] || bad "spmm --device gpu left an output behind"
    fi
    "$spmm" -q --device tpu -o "$tmp/yg.npy" "$karate" "$tmp/x34_13.npy" 2>/dev/null; rc=$?
    [ $rc -eq 2 ] || bad "spmm --device tpu: exit $rc (want 2)"
    "$spmm" -q -o "$tmp/y.npy" "$karate" "$tmp/x34_f64.npy" || bad "spmm with f64 X failed"
    compare "$tmp/y.npy" "$karate" "$tmp/x34_f64.npy" || bad "spmm f64 X differs"
    # SciPy's own .npz (format stored as a NumPy string), CSR and CSC, compressed or not
    $py - "$tmp" <<'PY' || bad "could not write SciPy .npz files"
import sys, numpy as np, scipy.sparse as sp, scipy.io
d = sys.argv[1]
A = scipy.io.mmread(d + '/../' if False else sys.argv[1] + '/a.mtx').tocsr().astype(np.float32)[:300, :300]
A.data = np.linspace(0.5, 2.0, A.nnz).astype(np.float32)
sp.save_npz(d + '/a_csr.npz', A)
sp.save_npz(d + '/a_csc.npz', A.tocsc(), compressed=False)
np.savez(d + '/a_ustr.npz', indptr=A.indptr, indices=A.indices, data=A.data, shape=np.array(A.shape), format=np.array('csr'))
np.save(d + '/x300.npy', np.random.default_rng(5).standard_normal((300, 7)).astype(np.float32))
fmt = np.load(d + '/a_ustr.npz')['format']
assert fmt.dtype.kind == 'U', fmt.dtype
PY
    for f in a_csr a_csc a_ustr; do
        "$spmm" -q -o "$tmp/y.npy" "$tmp/$f.npz" "$tmp/x300.npy" || bad "spmm cannot read SciPy's $f.npz"
        compare "$tmp/y.npy" "$tmp/a_csr.npz" "$tmp/x300.npy" || bad "spmm on $f.npz differs from SciPy"
    done
    "$cond" -q --stats "$tmp/a_csr.npz" >/dev/null || bad "condense cannot read a SciPy .npz"
    # feature rows not matching the node count
    expect_fail "X with 30 rows for 34 nodes" "30 feature rows, but the graph has 34 nodes" "$spmm" "$karate" "$tmp/x30_5.npy"
    [ ! -e "$tmp/y-missing.npy" ] || bad "left an output"
    # the JSON report: GFLOP/s = 2 nnz D / t
    "$spmm" --json --reps 3 "$karate" "$tmp/x34_13.npy" >"$tmp/spmm.json" || bad "spmm --json failed"
    $py -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["edges"]==156 and j["dim"]==13 and abs(j["gflops"]-2*156*13/j["median_s"]/1e9) < 1e-3*j["gflops"], j' "$tmp/spmm.json" || bad "spmm --json: $(cat "$tmp/spmm.json")"
fi

# ---- bad graph inputs: file and line named, exit 1, no output -------------------------------
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n' >"$tmp/short.mtx"
expect_fail "fewer entries than declared" "short.mtx" "$cond" -o "$tmp/out.safetensors" "$tmp/short.mtx"
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n0 1\n' >"$tmp/zero.mtx"
expect_fail "index 0 in a 1-based file" "zero.mtx:4" "$cond" -o "$tmp/out.safetensors" "$tmp/zero.mtx"
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 3 2\n1 2\n2 4\n' >"$tmp/range.mtx"
expect_fail "index out of range" "range.mtx:4" "$cond" -o "$tmp/out.safetensors" "$tmp/range.mtx"
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 4 1\n1 2\n' >"$tmp/rect.mtx"
expect_fail "non-square adjacency" "rect.mtx" "$cond" -o "$tmp/out.safetensors" "$tmp/rect.mtx"
printf '%%%%MatrixMarket matrix cordinate pattern general\n3 3 1\n1 2\n' >"$tmp/header.mtx"
expect_fail "malformed banner" "header.mtx" "$cond" -o "$tmp/out.safetensors" "$tmp/header.mtx"
printf '%%%%MatrixMarket matrix coordinate pattern general\n3 three 1\n1 2\n' >"$tmp/size.mtx"
expect_fail "malformed size line" "size.mtx:2" "$cond" -o "$tmp/out.safetensors" "$tmp/size.mtx"
printf '# snap\n1\t2\n3 x\n' >"$tmp/bad.txt"
expect_fail "malformed SNAP line" "bad.txt:3" "$cond" -o "$tmp/out.safetensors" "$tmp/bad.txt"
expect_fail "missing graph" "/nonexistent/g.mtx" "$cond" -o "$tmp/out.safetensors" /nonexistent/g.mtx
[ ! -e "$tmp/out.safetensors" ] || bad "a failed condense left its output"
ls -a "$tmp" | grep -q '\.tmp$' && bad "a failed condense left a temporary file"
# SNAP with gaps and comments reads
printf '# a SNAP list\n# FromNodeId\tToNodeId\n10\t20\n20 1000\n1000\t10\n' >"$tmp/snap.txt"
"$cond" -q --stats --json "$tmp/snap.txt" >"$tmp/snap.json" || bad "SNAP list failed"
grep -q '"nodes": 3, "edges": 3' "$tmp/snap.json" || bad "SNAP list with id gaps: $(cat "$tmp/snap.json")"
# usage errors
"$cond" "$karate" 2>/dev/null; [ $? -eq 2 ] || bad "condense without -o or --stats is not a usage error"
"$cond" -H 0 --stats "$karate" 2>/dev/null; [ $? -eq 2 ] || bad "-H 0 is not a usage error"
"$spmm" "$karate" 2>/dev/null; [ $? -eq 2 ] || bad "spmm with one argument is not a usage error"

[ $fail -eq 0 ] && echo "graph tools: all checks passed"
exit $fail
