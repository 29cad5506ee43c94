"""The annotator-facing UI: queue, pairwise/ranking/rating views, review. Calls feedback services."""
