"""Round and job hyperparameters: the engine's config dataclasses as JSON, with their defaults.

Stored on rounds and jobs as plain dicts (sections "generation", "reward", "dpo", "ppo"), validated
by building the engine's own dataclasses, so a bad value is refused when the round is launched
rather than hours later on the GPU worker.
"""

from dataclasses import asdict

from feedback.errors import ServiceError
from training.engine import config as engine_config
from training.models import RoundDefaults, RoundMethod

HYPERPARAMETER_SECTIONS = {
    "generation": engine_config.GenerationSettings,
    "reward": engine_config.RewardRunConfig,
    "dpo": engine_config.DPORunConfig,
    "ppo": engine_config.PPORunConfig,
}
NOT_HYPERPARAMETERS = {"base_model", "num_samples"}


def default_hyperparameters(method: str) -> dict:
    """The engine's defaults for a round of `method`, in the sections a round uses."""
    sections = (
        ["generation", "ppo", "reward"] if method == RoundMethod.PPO else ["generation", "dpo"]
    )
    defaults = {}
    for section in sections:
        config_class = HYPERPARAMETER_SECTIONS[section]
        instance = config_class() if section == "generation" else config_class(base_model="")
        defaults[section] = {
            key: value for key, value in asdict(instance).items() if key not in NOT_HYPERPARAMETERS
        }
    return defaults


def project_defaults(project_id: int, method: str) -> dict:
    """What a round of `method` starts from in this project: its saved round defaults (in the
    method's sections) over the engine's."""
    saved = (
        RoundDefaults.objects.filter(project_id=project_id)
        .values_list("hyperparameters", flat=True)
        .first()
    )
    defaults = default_hyperparameters(method)
    for section, values in (saved or {}).items():
        if section in defaults and isinstance(values, dict):
            defaults[section] = deep_merge(defaults[section], values)
    return defaults


def check_round_defaults(hyperparameters: dict) -> None:
    """Refuse saved round defaults that some round could not start from."""
    if not isinstance(hyperparameters, dict):
        raise ServiceError("Round defaults must be an object of sections.")
    known = {
        section for method in RoundMethod.values for section in default_hyperparameters(method)
    }
    unknown = sorted(set(hyperparameters) - known)
    if unknown:
        raise ServiceError(f"Unknown hyperparameter sections: {', '.join(unknown)}.")
    for method in RoundMethod.values:
        sections = default_hyperparameters(method)
        check_hyperparameters(method, {s: v for s, v in hyperparameters.items() if s in sections})


def check_hyperparameters(method: str, given: dict, base: dict | None = None) -> dict:
    """Merge `given` over `base` (the engine's defaults when None), refusing unknown sections,
    keys and bad values."""
    merged = base or default_hyperparameters(method)
    for section, values in (given or {}).items():
        if section not in merged:
            raise ServiceError(
                f"Unknown hyperparameter section {section!r} for {method}; use {', '.join(merged)}."
            )
        if not isinstance(values, dict):
            raise ServiceError(f"Hyperparameters in {section!r} must be an object.")
        unknown = sorted(set(values) - set(merged[section]))
        if unknown:
            raise ServiceError(f"Unknown {section} hyperparameters: {', '.join(unknown)}.")
        merged[section] = deep_merge(merged[section], values)
    for section, values in merged.items():
        config_class = HYPERPARAMETER_SECTIONS[section]
        try:
            if section == "generation":
                config_class(**values)
            else:
                build_engine_config(config_class, values, base_model="check")
        except (TypeError, ValueError) as error:
            raise ServiceError(f"Bad {section} hyperparameters: {error}") from error
    return merged


def deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = (
            deep_merge(out[key], value)
            if isinstance(out.get(key), dict) and isinstance(value, dict)
            else value
        )
    return out


def build_engine_config(config_class, values: dict, base_model: str):
    """An engine config dataclass from stored JSON values (nested lora/generation included)."""
    values = dict(values)
    if isinstance(values.get("lora"), dict):
        values["lora"] = engine_config.LoraSettings(**values["lora"])
    if isinstance(values.get("generation"), dict):
        values["generation"] = engine_config.GenerationSettings(**values["generation"])
    return config_class(base_model=base_model, **values)
