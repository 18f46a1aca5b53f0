#!/usr/bin/env bash
# Dry-run every scenario of .test/ (make lint): each in a scratch folder with its config.yaml, planning its
# targets as the tests ask for them (the start checks run too: a model that cannot run here is named).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
snakemake="${SNAKEMAKE:-$repo/.venv/bin/snakemake}"
case "$snakemake" in /*) ;; *) snakemake="$PWD/$snakemake" ;; esac # each dry run runs in a scratch folder
for config in "$repo"/.test/*/config.yaml; do
    scenario="$(basename "$(dirname "$config")")"
    case "$scenario" in
        matrix | mixed | gpu) targets=(all results/matrix.json) ;;
        zoo_support) targets=(results/zoo/support.md) ;;
        debug) targets=(debug) ;;
        *) targets=(all) ;;
    esac
    scratch="$(mktemp -d)"
    cp "$config" "$scratch/config.yaml"
    if ! (cd "$scratch" && "$snakemake" -s "$repo/Snakefile" --cores 2 -n --quiet rules -- "${targets[@]}" > "$scratch/dry_run.log" 2>&1); then
        cat "$scratch/dry_run.log" >&2
        echo "error: the dry run of scenario $scenario failed (.test/$scenario/config.yaml)" >&2
        exit 1
    fi
    echo "scenario $scenario: $(grep -E '^total +[0-9]+' "$scratch/dry_run.log" | awk '{print $2}' | head -1) jobs planned"
    rm -rf "$scratch"
done
