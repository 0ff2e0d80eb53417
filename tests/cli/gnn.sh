#!/bin/sh
# sdl-gnn forward passes against NumPy implementations with the same weights:
#   GCN: H = relu(Â X W1 + b1), Y = Â H W2 + b2, Â = D^-1/2 (A+I) D^-1/2 (self-loops only
#        where missing), on a graph file and on a reordered --gcn-norm condensed file,
#        CSR and condensed kernels; 1e-5 relative.
#   AGNN: 4 layers, Z = H W, P = row softmax of beta * cos(z_i, z_j) over the neighbours
#        (self-loops added), H' = P Z + b, ReLU between layers; 1e-4 relative.
#   Weights from one .safetensors/.npz or several .npy files (W1.npy...); generated
#   weights are deterministic per seed; bad weights, bad features and a condensed file
#   without --gcn-norm are refused with exit 1.
#   --device: cpu is the default bit for bit; gpu either runs (TF32: NumPy at 2e-3) or is
#   refused with exit 1 and the reason when no GPU is usable; gpu with --kernel csr is a
#   usage error.
# The NumPy parts are skipped (with a note) when /usr/bin/python3 lacks NumPy/SciPy.
set -u
tools="$SDL_BUILD_DIR/tools"
data="$SDL_TESTDATA/graphs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
py=/usr/bin/python3
gnn="$tools/sdl-gnn"
karate="$data/karate.mtx.gz"
football="$data/football.mtx.gz"
if ! { [ -x $py ] && $py -c 'import numpy, scipy.sparse, scipy.io' 2>/dev/null; }; then
    echo "note: NumPy/SciPy absent for /usr/bin/python3: NumPy cross-checks skipped"
    # what can still be checked: determinism of generated weights through a pipe-free run
    "$gnn" -q "$karate" "$karate" 2>/dev/null; [ $? -eq 1 ] || bad "a graph as features is not refused"
    exit $fail
fi

$py - "$tmp" <<'PY'
import sys, numpy as np
d = sys.argv[1]; rng = np.random.default_rng(11)
np.save(d + '/xk.npy', rng.standard_normal((34, 12)).astype(np.float32))
np.save(d + '/xf.npy', rng.standard_normal((115, 20)).astype(np.float32))
np.save(d + '/xbad.npy', rng.standard_normal((33, 12)).astype(np.float32))
g = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)
np.savez(d + '/gcn_k.npz', W1=g(12, 16), b1=g(16), W2=g(16, 5), b2=g(5))
for name, a in dict(W1=g(20, 16), W2=g(16, 7)).items(): np.save('%s/%s.npy' % (d, name), a)
agnn = dict(W1=g(20, 32), b1=g(32), beta1=np.array([1.5], np.float32), W2=g(32, 32), beta2=np.array(0.7, np.float32),
            W3=g(32, 32), W4=g(32, 6), b4=g(6))
np.savez(d + '/agnn_f.npz', **agnn)
np.savez(d + '/extra.npz', W1=g(12, 16), W2=g(16, 5), W9=g(3, 3))
np.savez(d + '/wrongshape.npz', W1=g(11, 16))
np.savez(d + '/nan.npz', W1=np.full((12, 4), np.nan, np.float32))
PY

# check Y GRAPH X MODEL WEIGHTS...: NumPy forward pass vs Y
check() {
    $py - "$@" <<'PY'
import os, sys, numpy as np, scipy.io, scipy.sparse as sp
y, graph, x, model = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
P = {}
for f in sys.argv[5:]:
    if f.endswith('.npy'): P[f.rsplit('/', 1)[1][:-4]] = np.load(f)
    else: P.update(dict(np.load(f)))
A = scipy.io.mmread(graph).tocsr().astype(np.float64)
A = A.tolil(); A.setdiag([1.0 if A[i, i] == 0 else A[i, i] for i in range(A.shape[0])]); A = A.tocsr()
H = np.load(x).astype(np.float64); L = sum(1 for k in P if k.startswith('W'))
for l in range(1, L + 1):
    W = P['W%d' % l].astype(np.float64); b = P.get('b%d' % l, np.zeros(W.shape[1]))
    Z = H @ W
    if model == 'gcn':
        dinv = 1 / np.sqrt(np.asarray(A.sum(1)).ravel())
        H = (sp.diags(dinv) @ A @ sp.diags(dinv)) @ Z + b
    else:
        beta = float(np.asarray(P.get('beta%d' % l, 1.0)).ravel()[0])
        nrm = np.linalg.norm(Z, axis=1); Zn = Z / np.where(nrm > 0, nrm, 1)[:, None]
        C = A.tocoo(); s = beta * np.einsum('ij,ij->i', Zn[C.row], Zn[C.col])
        S = sp.csr_matrix((s, (C.row, C.col)), shape=A.shape).toarray(); M = A.toarray() != 0
        S = np.where(M, S, -np.inf); S = np.exp(S - S.max(1, keepdims=True)); S /= S.sum(1, keepdims=True)
        H = S @ Z + b
    if l < L: H = np.maximum(H, 0)
got = np.load(y)
tol = float(os.environ.get('GNN_TOL', 0)) or (1e-5 if model == 'gcn' else 1e-4)
err = np.abs(got - H).max() / max(np.abs(H).max(), 1e-30)
assert got.shape == H.shape and err <= tol, (got.shape, H.shape, err)
PY
}

for kernel in condensed csr; do
    "$gnn" -q --kernel $kernel --weights "$tmp/gcn_k.npz" -o "$tmp/y.npy" "$karate" "$tmp/xk.npy" || bad "gcn $kernel failed"
    check "$tmp/y.npy" "$karate" "$tmp/xk.npy" gcn "$tmp/gcn_k.npz" || bad "GCN ($kernel) differs from NumPy"
    "$gnn" -q --kernel $kernel --model agnn --weights "$tmp/agnn_f.npz" -o "$tmp/y.npy" "$football" "$tmp/xf.npy" || bad "agnn $kernel failed"
    check "$tmp/y.npy" "$football" "$tmp/xf.npy" agnn "$tmp/agnn_f.npz" || bad "AGNN ($kernel) differs from NumPy"
done
# weights as separate .npy files named after their tensors
"$gnn" -q --weights "$tmp/W1.npy" --weights "$tmp/W2.npy" -o "$tmp/y.npy" "$football" "$tmp/xf.npy" || bad "gcn with .npy weights failed"
check "$tmp/y.npy" "$football" "$tmp/xf.npy" gcn "$tmp/W1.npy" "$tmp/W2.npy" || bad "GCN with .npy weights differs from NumPy"
# a reordered, normalised condensed file gives the same output, in the original row order
"$tools/sdl-gnn-condense" -q --gcn-norm --reorder degree -o "$tmp/k.safetensors" "$karate" || bad "condense failed"
"$gnn" -q --weights "$tmp/gcn_k.npz" -o "$tmp/y2.npy" "$tmp/k.safetensors" "$tmp/xk.npy" || bad "gcn on the condensed file failed"
check "$tmp/y2.npy" "$karate" "$tmp/xk.npy" gcn "$tmp/gcn_k.npz" || bad "GCN on the reordered condensed file differs from NumPy"
# generated weights: deterministic per seed, shaped by --hidden/--layers/--classes
"$gnn" -q --model agnn --seed 4 --classes 3 -o "$tmp/a.npy" "$karate" "$tmp/xk.npy" || bad "agnn generated failed"
"$gnn" -q --model agnn --seed 4 --classes 3 --threads 1 -o "$tmp/b.npy" "$karate" "$tmp/xk.npy"
"$gnn" -q --model agnn --seed 5 --classes 3 -o "$tmp/c.npy" "$karate" "$tmp/xk.npy"
cmp -s "$tmp/a.npy" "$tmp/b.npy" || bad "generated weights: output depends on threads"
cmp -s "$tmp/a.npy" "$tmp/c.npy" && bad "generated weights: seed ignored"
$py -c 'import numpy as np,sys; assert np.load(sys.argv[1]).shape == (34, 3)' "$tmp/a.npy" || bad "--classes 3 shape"
# --device: cpu is what runs by default; gpu runs in TF32 or says why it cannot
"$gnn" -q --device cpu --weights "$tmp/gcn_k.npz" -o "$tmp/dc.npy" "$karate" "$tmp/xk.npy" || bad "--device cpu failed"
"$gnn" -q --weights "$tmp/gcn_k.npz" -o "$tmp/dd.npy" "$karate" "$tmp/xk.npy"
cmp -s "$tmp/dc.npy" "$tmp/dd.npy" || bad "--device cpu differs from the default"
"$gnn" -q --device gpu --weights "$tmp/gcn_k.npz" -o "$tmp/dg.npy" "$karate" "$tmp/xk.npy" 2>"$tmp/err.txt"; rc=$?
if [ $rc -eq 0 ]; then
    GNN_TOL=2e-3 check "$tmp/dg.npy" "$karate" "$tmp/xk.npy" gcn "$tmp/gcn_k.npz" || bad "GCN on the GPU differs from NumPy beyond TF32"
else
    [ $rc -eq 1 ] || bad "--device gpu without a GPU: exit $rc (want 1)"
    grep -q "GPU requested but none is usable" "$tmp/err.txt" || bad "--device gpu: no reason given: $(cat "$tmp/err.txt")"
    [ ! -e "$tmp/dg.npy" ] || bad "--device gpu left an output"
fi
"$gnn" -q --device auto --weights "$tmp/gcn_k.npz" -o "$tmp/da.npy" "$karate" "$tmp/xk.npy" || bad "--device auto failed"
"$gnn" --device gpu --kernel csr "$karate" "$tmp/xk.npy" 2>/dev/null; [ $? -eq 2 ] || bad "--device gpu --kernel csr is not a usage error"
"$gnn" --device tpu "$karate" "$tmp/xk.npy" 2>/dev/null; [ $? -eq 2 ] || bad "--device tpu is not a usage error"
"$gnn" --json --device cpu "$karate" "$tmp/xk.npy" | $py -c 'import json,sys; assert json.load(sys.stdin)["device"] == "cpu"' || bad "--json lacks the device"

# the timing report: one entry per layer, shares in [0, 1]
"$gnn" --json --model agnn "$karate" "$tmp/xk.npy" >"$tmp/t.json" || bad "--json failed"
$py -c 'import json,sys; j=json.load(open(sys.argv[1])); assert len(j["layers"])==4 and [l["out"] for l in j["layers"]]==[32,32,32,8] and 0<=j["aggregate_share"]<=1, j' "$tmp/t.json" || bad "--json report: $(cat "$tmp/t.json")"

# bad input: exit 1, the file named
expect_fail() {
    what=$1; text=$2; shift 2
    "$@" >/dev/null 2>"$tmp/err.txt"; rc=$?
    [ $rc -eq 1 ] || bad "$what: exit $rc (want 1): $(cat "$tmp/err.txt")"
    grep -q -- "$text" "$tmp/err.txt" || bad "$what: message lacks '$text': $(cat "$tmp/err.txt")"
}
expect_fail "feature rows" "33 feature rows, but the graph has 34 nodes" "$gnn" -o "$tmp/no.npy" "$karate" "$tmp/xbad.npy"
expect_fail "unknown tensor" "'W9' is not a parameter" "$gnn" --weights "$tmp/extra.npz" "$karate" "$tmp/xk.npy"
expect_fail "wrong W1 shape" "'W1' must be \[12, out\]" "$gnn" --weights "$tmp/wrongshape.npz" "$karate" "$tmp/xk.npy"
expect_fail "NaN weights" "non-finite" "$gnn" --weights "$tmp/nan.npz" "$karate" "$tmp/xk.npy"
"$tools/sdl-gnn-condense" -q -o "$tmp/plain.safetensors" "$karate"
expect_fail "GCN on an unnormalised condensed file" "gcn-norm" "$gnn" "$tmp/plain.safetensors" "$tmp/xk.npy"
[ ! -e "$tmp/no.npy" ] || bad "a failed run left its output"
"$gnn" --model gat "$karate" "$tmp/xk.npy" 2>/dev/null; [ $? -eq 2 ] || bad "--model gat is not a usage error"

[ $fail -eq 0 ] && echo "sdl-gnn: all checks passed"
exit $fail
