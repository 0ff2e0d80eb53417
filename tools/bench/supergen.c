/* placeholder: being written */ typedef int bench_placeholder_supergen;
