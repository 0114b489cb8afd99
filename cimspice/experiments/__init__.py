"""Experiments over whole datasets: ``cimspice evaluate`` and ``cimspice sweep``, their reports.

Modules, in the order a run uses them::

    rundir     the run directory: dataset resolution, sample selection, digests, manifest
    tasks      one sample as a pure, picklable task; its sample file (write, read, done?)
    workers    engine tasks on dask.distributed: local workers or --scheduler (Ctrl-C, progress)
    worker_setup, reaper   what each Dask worker gets: one BLAS thread, the reaper of its ngspice
    report     accuracy protocols, NRMSE statistics, report.json / report.md
    plots      the report's PNGs and `cimspice plot` (data first, drawing second)
    evaluate   Options and evaluate(): the orchestration of the above
    sweep_grid, sweep_tasks, sweep_report   a sweep's grid, worker tasks and chunk files, figures
    sweep      Options and sweep(): a grid of configs x chip instances, on the same workers
"""
