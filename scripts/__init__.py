"""Scripts for the project's own upkeep: the README's pictures (`python -m scripts.pictures`)."""
