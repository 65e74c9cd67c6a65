"""Task cards: one TOML file per benchmark task (see neuroevo.config). Shipped as neuroevo.tasks."""
