"""Sample workflows and activities, run by ``ledgerflow dev`` and the benchmarks."""
