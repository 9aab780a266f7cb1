"""The workloads behind ``fleetflow bench``, each measured against a same-run baseline:
``bench.core_transitions`` and ``bench.core_store`` (``bench core``), ``bench.e2e``
(``bench e2e``); ``bench.wire`` holds the brokers, paho clients and raw subscriber they and
the tests share."""
