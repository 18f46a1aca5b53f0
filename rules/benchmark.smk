# Speed on this machine: every variant (backend x precision [x Winograd]) timed in its own job on
# the workflow's own models and prep bins, one job after another (each takes every core), then
# gathered into results/benchmark.md/.json. Helpers (benchmark_variants, ...) are in rules/common.smk.


rule benchmark_machine:
    output:
        "results/benchmark/machine.json",
    log:
        "results/logs/benchmark/machine.log",
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    resources:
        **stage_resources("default"),
    params:
        script=script("benchmark_machine.py"),
    shell:
        "python {params.script} --threads {threads} --output {output} > {log} 2>&1"


rule benchmark_variant:
    input:
        model=benchmark_model,
        bins=benchmark_bins,
        count_model=SIM_MODEL,
        # after the machine figures: the jobs of one sequence never share the cores
        machine="results/benchmark/machine.json",
    output:
        json="results/benchmark/{variant}.json",
        predictions="results/benchmark/{variant}.npy",
    log:
        "results/logs/benchmark/{variant}.log",
    wildcard_constraints:
        variant="|".join(BENCHMARK_VARIANTS),
    conda:
        "../envs/deeplabv3.yaml"
    threads: job_threads
    resources:
        **stage_resources("infer"),
    params:
        backend=benchmark_args,
        repeats=config["benchmark"]["repeats"],
        warmup=config["warmup"],
        script=script("benchmark_variant.py"),
    shell:
        "python {params.script} --variant {wildcards.variant} {params.backend} --model {input.model}"
        " --bins {input.bins} --count-model {input.count_model} --repeats {params.repeats}"
        " --warmup {params.warmup} --threads {threads} --output {output.json}"
        " --predictions {output.predictions} > {log} 2>&1"


rule benchmark:
    input:
        machine="results/benchmark/machine.json",
        variants=benchmark_files("json"),
        predictions=benchmark_files("npy"),
    output:
        markdown="results/benchmark.md",
        json="results/benchmark.json",
        html=report(
            "results/report/benchmark.html",
            caption="../report/benchmark.rst",
            category="Speed",
            labels={"figure": "benchmark table"},
        ),
    log:
        "results/logs/benchmark/gather.log",
    localrule: True
    conda:
        "../envs/deeplabv3.yaml"
    params:
        reference=config["benchmark"]["reference"],
        min_agreement=config["benchmark"]["min_pixel_agreement"],
        frames=len(FRAMES),
        script=script("benchmark_report.py"),
    shell:
        "python {params.script} --machine {input.machine} --variants {input.variants}"
        " --reference {params.reference} --min-agreement {params.min_agreement}"
        " --frames {params.frames} --markdown {output.markdown} --json {output.json}"
        " --html {output.html} > {log} 2>&1 && cat {output.markdown}"
