"""podmod's RQ jobs: plain module-level functions, callable by a worker or straight from the CLI."""
