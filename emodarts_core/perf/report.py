"""The step benchmark's result as text (`python -m emodarts_core.bench` without `--json`)."""

from __future__ import annotations

from emodarts_core.perf.resident import PeakRSS


def _row(r: dict) -> str:
    memory = f"{r['peak_rss_mb']:.0f} MB RSS (+{r['peak_rss_increase_mb']:.0f} MB over the built model and data)"
    if "peak_cuda_allocated_mb" in r:
        memory = f"{r['peak_cuda_allocated_mb']:.0f} MB CUDA allocated, " + memory
    return (f"  {r['form']:<9} : {r['seconds_per_step']:8.3f} s/step (median of {len(r['step_seconds'])}), "
            f"{r['samples_per_second']:.2f} samples/s, {r['cpu_seconds_per_step']:.1f} CPU s/step, peak {memory}"
            + (", no checkpointing" if r["form"] == "plain" else ""))


def _checkpointing_text(r: dict) -> str:
    done, of = len(r.get("checkpointed_edges", ())), r.get("n_edges", 0)
    return ((", no activation checkpointing" if done == 0 else ", activation checkpointing"
             + ("" if done == of else f" of {done} of {of} mixed ops"))
            + ("" if "memory_budget_gb" not in r else " (no memory budget)" if r["memory_budget_gb"] is None
               else f" (planned for a budget of {r['memory_budget_gb']:g} GiB)"))


def report(r: dict) -> str:
    """The text report of one configuration's result (`bench.benchmark`)."""
    lines = [f"emoDARTS search step, preset {r['preset']} (input {'x'.join(map(str, r['input']))}, batch {r['batch']}), "
             f"order {r['order']}, {r['device']} {r['precision']}, {r['threads']} threads"
             + (f" (OpenMP wait policy {r['omp_wait_policy']}, freed memory "
                f"{'kept in the heap' if r.get('retained_heap') else 'returned to the system'})"
                if r["device"] == "cpu" else "")
             + (_checkpointing_text(r) if r["checkpointing"] or "memory_budget_gb" in r else "")
             + (f", PC-DARTS partial channels K={r['partial_channels']}" if r.get("partial_channels", 1) > 1 else "")
             + (f", params profile {r['params']}" if r.get("params") else "")
             + (f", network overrides {r['network_overrides']}" if r.get("network_overrides") else ""),
             f"  supernet parameters : {r['supernet_parameters']:,} (+{r['alpha_parameters']} alphas)",
             f"  seconds per step    : {r['seconds_per_step']:.3f} (median of {len(r['step_seconds'])})",
             f"  samples per second  : {r['samples_per_second']:.2f}",
             f"  CPU seconds per step: {r['cpu_seconds_per_step']:.1f} (all threads; 1-min load average "
             f"{r['load_average_1min'] or float('nan'):.1f})",
             f"  peak RSS            : {r['peak_rss_mb']:.0f} MB (+{r['peak_rss_increase_mb']:.0f} MB over the built model and data)"
             + ("" if r.get("peak_rss_method", PeakRSS.KERNEL) == PeakRSS.KERNEL else f"; {r['peak_rss_method']}")]
    if "peak_cuda_allocated_mb" in r:
        lines.append(f"  peak CUDA allocated : {r['peak_cuda_allocated_mb']:.0f} MB")
    if "arithmetic_floor_seconds" in r:
        lines.append(f"  arithmetic floor    : {r['arithmetic_floor_seconds']:.2f} s ({r['gflop_per_step']:.0f} GFLOP of "
                     f"convolutions, matrix products and recurrences per step at {r['matmul_gflops']:.0f} GFLOP/s, "
                     f"this machine's matrix-product rate); the step runs at "
                     f"{100 * r['fraction_of_matmul_rate']:.0f} % of that rate")
    if "predicted_peak_mb" in r:
        lines.append(f"  predicted peak      : {r['predicted_peak_mb']:.0f} MB "
                     f"({100 * r['prediction_error']:+.0f} % vs measured)")
    plain = r.get("plain")
    if plain is not None:
        lines += ["  same run, same preset, batch and order:", _row(r), _row(plain),
                  f"  speed-up            : {r['speedup']:.2f}x (plain s / fast s; CPU time "
                  f"{r['cpu_time_ratio']:.2f}x); memory ratio {r['memory_ratio']:.2f}x (plain peak / "
                  f"fast peak, {r['memory_measure']})"]
    elif r.get("plain_skipped"):
        lines.append(f"  plain form          : not measured ({r['plain_skipped']})")
    if "profile_table" in r:
        lines += ["  top operators (last timed step, by self CPU time):", r["profile_table"]]
    return "\n".join(lines)


__all__ = ["report"]
