"""The ``fleetflow`` command line. Nothing here but the entry point and its subcommands."""

__all__: list[str] = []
