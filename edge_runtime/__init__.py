"""Per-facility edge runtime (docs/design.md §3): a sans-IO core inside a thin I/O shell.

Subpackages, each with a small public surface (``__all__``):

- ``edge_runtime.core`` — the deterministic workflow engine (no clocks, files or sockets);
- ``edge_runtime.store`` — the RocksDB event log, snapshots, recovery, backup, cache;
- ``edge_runtime.shell`` — MQTT intake, the batch loop, timers, metrics, configuration;
- ``edge_runtime.vda5050`` — VDA 5050 master control and its bridge to the core;
- ``edge_runtime.facility`` — the facility map (graph, zones, path costs);
- ``edge_runtime.templates`` — workflow templates from files;
- ``edge_runtime.testing`` — a scripted fleet that drives a core in virtual time.

Importing this package imports nothing heavy; import the subpackage you need.
"""
