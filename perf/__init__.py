"""The benchmark harness, installed as `trit_rnn.perf`: sweeps, timing, results files, charts,
autotune and resource reports, long-sequence profiles. The `trit-rnn` command line drives it."""
