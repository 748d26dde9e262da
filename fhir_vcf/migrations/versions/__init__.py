"""Alembic revisions, one file each, numbered in order (0001, 0002, ...); see docs/migrations.md."""
