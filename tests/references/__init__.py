"""Reference implementations that exist only for the tests (docs/DESIGN.md §4)."""
