# Included last, once every rule exists: how Snakemake finds the producer of a file, made fast for
# this workflow's many explicit file lists (docs/performance.md, "Planning").


index_explicit_outputs()
