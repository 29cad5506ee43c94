"""The domain: projects, prompts, completions, model versions, tasks, judgments, pairs."""
