# Sourced by the scripts: make nvcc visible where the CUDA toolkit is installed in its
# usual place but not on PATH (CUDA is optional; without nvcc the CPU build is made).
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    PATH="$PATH:/usr/local/cuda/bin"
    export PATH
fi
