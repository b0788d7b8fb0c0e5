"""The Dagster-instance services between the CLI and the definitions: session runs, backfills,
opening the instance. Plain functions over a ``DagsterInstance``; they print nothing."""
