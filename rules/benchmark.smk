# Speed on this machine: every variant (backend x precision [x Winograd]) timed in its own job on
# the workflow's own models and prep bins, one job after another (each takes every core), then
# gathered into results/benchmark.md/.json.

# The variants (backend-precision[-winograd]) are deeplabv3_pipeline/planning/variants.py's; the model is the
# configured one (model.name), so its files are results/benchmark/<model>/<variant>.json.


rule benchmark_machine:
    output:
        artifacts.BENCHMARK_MACHINE.output,
    log:
        artifacts.BENCHMARK_MACHINE.log,
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    resources:
        **stage_resources("default"),
    params:
        script=script("benchmark_machine.py"),
    shell:
        "python {params.script:q} --threads {threads} --output {output:q} > {log:q} 2>&1"


rule benchmark_variant:
    input:
        model=get_benchmark_model,
        companions=get_benchmark_model_companions,
        bins=get_benchmark_bins,
        count_model=PLAN.sim_model(CELL.model),
        # the cell of this variant's predictions of the timed frames, where the config has that cell
        cell_predictions=get_benchmark_cell_predictions,
        # after the machine figures: the jobs of one sequence never share the cores
        machine=artifacts.BENCHMARK_MACHINE.output,
    output:
        json=artifacts.BENCHMARK_VARIANT.format(model=CELL.model).output,
        predictions=artifacts.BENCHMARK_VARIANT.format(
            model=CELL.model
        ).output.removesuffix(".json")
        + ".npy",
    log:
        artifacts.BENCHMARK_VARIANT.format(model=CELL.model).log,
    wildcard_constraints:
        variant="|".join(CPU_VARIANTS),
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    resources:
        **stage_resources("infer"),
    params:
        backend_flags=get_benchmark_args,
        cell_flags=lambda wildcards, input: (
            shlex.join(["--cell-predictions", *input.cell_predictions])
            if input.cell_predictions
            else ""
        ),
        repeats=config["benchmark"]["repeats"],
        warmup=config["warmup"],
        script=script("benchmark_variant.py"),
    shell:
        "python {params.script:q} --variant {wildcards.variant:q} {params.backend_flags} --model {input.model:q}"
        " --bins {input.bins:q} --count-model {input.count_model:q} --repeats {params.repeats:q}"
        " --warmup {params.warmup:q} --threads {threads} {params.cell_flags} --output {output.json:q}"
        " --predictions {output.predictions:q} > {log:q} 2>&1"


rule benchmark:
    input:
        machine=artifacts.BENCHMARK_MACHINE.output,
        variants=get_benchmark_files("json"),
        predictions=get_benchmark_files("npy"),
        verification=get_verification(
            [Cell(CELL.model, VARIANTS[name]) for name in get_benchmark_variants()]
        ),
    output:
        markdown="results/benchmark.md",
        json=artifacts.BENCHMARK.output,
        html=report(
            "results/report/benchmark.html",
            caption="../report/benchmark.rst",
            category="Speed",
            labels=get_stamp_labels(
                {"figure": "benchmark table"},
                artifacts.BENCHMARK.output,
                get_benchmark_stamp,
                "snakemake --cores all results/benchmark.md",
            ),
        ),
    log:
        artifacts.BENCHMARK.log,
    localrule: True
    conda:
        "../envs/deeplabv3.yaml"
    params:
        reference=config["benchmark"]["reference"],
        min_agreement=config["benchmark"]["min_pixel_agreement"],
        frames=len(FRAMES),
        stamp=lambda wildcards: json.dumps(get_benchmark_stamp().to_json()),
        script=script("benchmark_report.py"),
    shell:
        "python {params.script:q} --machine {input.machine:q} --variants {input.variants:q}"
        " --reference {params.reference:q} --min-agreement {params.min_agreement:q}"
        " --frames {params.frames:q} --markdown {output.markdown:q} --json {output.json:q}"
        " --html {output.html:q} --stamp {params.stamp:q} > {log:q} 2>&1 && cat {output.markdown:q}"
